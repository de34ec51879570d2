// Which BLAS ft runs on, for the start-up report. OpenBLAS chooses its kernels for the CPU when
// it loads, unless OPENBLAS_CORETYPE names them (this matters: on an AVX-512 CPU its Haswell
// kernels run at about half the speed of the AVX-512 ones).
#pragma once

#include <string>

namespace ft {

// "OpenBLAS 0.3.21 ... USE_OPENMP ..., Cooperlake kernels (OPENBLAS_CORETYPE=...)".
std::string blas_description();

}  // namespace ft
