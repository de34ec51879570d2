// Accounts one collective in a communicator's stats: the call, the payload bytes this rank passed
// in, and the wall time until the collective returned (waiting for peers included).
#pragma once

#include <chrono>
#include <cstddef>

#include "parallel/communicator.h"

namespace ft {

class CollectiveTimer {
 public:
  CollectiveTimer(CommunicatorStats& stats, size_t bytes)
      : stats_(stats), start_(std::chrono::steady_clock::now()) {
    stats_.calls += 1;
    stats_.bytes += static_cast<int64_t>(bytes);
  }
  ~CollectiveTimer() {
    stats_.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  CollectiveTimer(const CollectiveTimer&) = delete;
  CollectiveTimer& operator=(const CollectiveTimer&) = delete;

 private:
  CommunicatorStats& stats_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ft
