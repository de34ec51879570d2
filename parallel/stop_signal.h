// Stop requests from the scheduler: Slurm sends SIGUSR1 ahead of the time limit when asked
// (`--signal=USR1@120`) and SIGTERM before killing a job (time limit, scancel, preemption). The
// handlers only record the signal; the trainer checks between steps, saves a checkpoint and exits,
// so a requeued job continues with `ft_train --resume`.
#pragma once

#include "parallel/communicator.h"

namespace ft {

// Installs the handlers for SIGTERM and SIGUSR1. Each handler fires once and then restores the
// default action, so a second SIGTERM still ends a process that never reaches a step boundary.
void install_stop_signal_handlers();
// Whether this process received a stop signal.
bool stop_requested();
// The signal that requested the stop (SIGTERM or SIGUSR1), 0 when none.
int stop_signal();
// Forgets a stop request (tests; a trainer that has acted on it).
void clear_stop_request();
// Whether any rank of `world` received a stop signal: every rank calls it at the same point (a
// collective: an all-reduce max of the flags), so all ranks stop after the same step.
bool any_rank_stop_requested(Communicator& world);

}  // namespace ft
