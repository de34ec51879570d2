// The Python interpreter of the parity tests: $FT_PYTHON when set, else the build folder's virtual
// environment that tools/setup.sh fills from tools/requirements-test.txt (FT_TEST_PYTHON).
#pragma once

#include <cstdlib>
#include <string>

namespace ft::testing {

inline std::string test_python() {
  const char* python = std::getenv("FT_PYTHON");
  return python != nullptr && *python != '\0' ? python : FT_TEST_PYTHON;
}

}  // namespace ft::testing
