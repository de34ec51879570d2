// A test hook that makes one rank fail mid-step, so tests can show a failing rank ends the whole
// job promptly with its message: FT_FAULT_INJECT="rank=R,step=S,kind=kill|throw|usr1" in the
// environment. kill: the rank SIGKILLs itself between its forward and backward (a crashed
// process); throw: it raises an error there (bad input seen by one rank); usr1: it receives
// SIGUSR1 there, as from Slurm's --signal before a time limit (every rank then saves after this
// step and exits 75). Unset: nothing happens.
#pragma once

#include <cstdint>

namespace ft {

class FaultInjection {
 public:
  FaultInjection();  // reads FT_FAULT_INJECT; a malformed value is an error naming it
  void at_step(int64_t step, int rank) const;

 private:
  int rank_ = -1;
  int64_t step_ = -1;
  enum class Kind { kill, error, stop_signal };
  Kind kind_ = Kind::error;
};

}  // namespace ft
