#include "runtime/blas.h"

#include <cblas.h>

#include <cstdlib>

namespace ft {

std::string blas_description() {
  std::string text =
      std::string(openblas_get_config()) + ", " + openblas_get_corename() + " kernels";
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE"))
    text += std::string(" (chosen by OPENBLAS_CORETYPE=") + forced + ")";
  return text;
}

}  // namespace ft
