// The world of a multi-rank test (tests/mpi/*.cpp), set up by support/mpi_main.cpp: every rank
// runs every test, and the run fails on every rank if any rank failed.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace ft::test {

// MPI_COMM_WORLD of this test run (a world of one when the binary runs without mpirun).
std::shared_ptr<Communicator> mpi_world();

}  // namespace ft::test
