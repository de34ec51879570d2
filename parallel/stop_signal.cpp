#include "parallel/stop_signal.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "runtime/error.h"

namespace ft {
namespace {

// Lock-free, so storing to it is async-signal-safe.
std::atomic<int> received_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void record_stop_signal(int signal) {
  received_signal.store(signal);
}

void install(int signal) {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: interrupted reads and writes resume; SA_RESETHAND: a second signal acts as usual.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  if (sigaction(signal, &action, nullptr) != 0)
    fail("sigaction({}) failed: {}", signal, std::strerror(errno));
}

}  // namespace

void install_stop_signal_handlers() {
  install(SIGTERM);
  install(SIGUSR1);
}

bool stop_requested() {
  return received_signal.load() != 0;
}

int stop_signal() {
  return received_signal.load();
}

void clear_stop_request() {
  received_signal.store(0);
}

bool any_rank_stop_requested(Communicator& world) {
  double flag = stop_requested() ? 1.0 : 0.0;
  world.all_reduce(std::span<double>(&flag, 1), ReduceOp::max);
  return flag > 0.0;
}

}  // namespace ft
