#include "runtime/train/fault_injection.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace ft {

FaultInjection::FaultInjection() {
  const char* value = std::getenv("FT_FAULT_INJECT");
  if (!value || !*value) return;
  const std::string text = value;
  std::string kind;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    const size_t equals = item.find('=');
    const std::string key = item.substr(0, equals);
    const std::string field = equals == std::string::npos ? "" : item.substr(equals + 1);
    try {
      if (key == "rank") {
        rank_ = std::stoi(field);
      } else if (key == "step") {
        step_ = std::stoll(field);
      } else if (key == "kind") {
        kind = field;
      } else {
        throw std::invalid_argument(key);
      }
    } catch (const std::exception&) {
      fail("FT_FAULT_INJECT = '{}': expected rank=R,step=S,kind=kill|throw|usr1", text);
    }
    begin = end + 1;
  }
  if (rank_ < 0 || step_ < 1 || (kind != "kill" && kind != "throw" && kind != "usr1"))
    fail("FT_FAULT_INJECT = '{}': expected rank=R,step=S,kind=kill|throw|usr1", text);
  kind_ = kind == "kill" ? Kind::kill : kind == "throw" ? Kind::error : Kind::stop_signal;
}

void FaultInjection::at_step(int64_t step, int rank) const {
  if (rank != rank_ || step != step_) return;
  switch (kind_) {
    case Kind::kill:
      std::raise(SIGKILL);
      break;
    case Kind::stop_signal:
      std::raise(SIGUSR1);  // the stop handler records it; the step goes on
      return;
    case Kind::error:
      break;
  }
  fail("FT_FAULT_INJECT: rank {} fails at step {} as asked", rank, step);
}

}  // namespace ft
