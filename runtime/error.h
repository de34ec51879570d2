// Errors that say where: every failure becomes an ft::Error carrying a message that names the
// file, line, field or tensor involved. Only main() decides to exit.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ft {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ft

// FT_CHECK(cond, "format", args...): throws ft::Error with the message and the source location.
#define FT_CHECK(cond, ...)                                                                    \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      throw ::ft::Error(fmt::format("{} ({}:{}: check `{}` failed)", fmt::format(__VA_ARGS__), \
                                    __FILE__, __LINE__, #cond));                               \
    }                                                                                          \
  } while (0)
