// Running the parity tests' reference scripts. The interpreter is $FT_PYTHON when set, else the
// build folder's virtual environment that tools/setup.sh fills from tools/requirements-test.txt
// (FT_TEST_PYTHON).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace ft::testing {

inline std::string test_python() {
  const char* python = std::getenv("FT_PYTHON");
  return python != nullptr && *python != '\0' ? python : FT_TEST_PYTHON;
}

struct CommandResult {
  int status = -1;     // pclose's status; 0 on success
  std::string output;  // stdout and stderr together
};

// Runs a shell command, capturing its output.
inline CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
  result.status = pclose(pipe);
  return result;
}

// Runs `script` (a path) with the test Python and `arguments` (already quoted).
inline CommandResult run_python(const std::string& script, const std::string& arguments) {
  return run_command("'" + test_python() + "' '" + script + "' " + arguments);
}

// What a failed script run says: the command, status and output, and how to get the packages.
inline std::string python_failure(const std::string& script, const CommandResult& result) {
  return "'" + test_python() + "' " + script + " failed (status " + std::to_string(result.status) +
         "). It needs the test Python ($FT_PYTHON, default build/python) with the packages of "
         "tools/requirements-test.txt (tools/setup.sh installs them). Output:\n" +
         result.output;
}

}  // namespace ft::testing
