// EXPECT_CONTAINS(text, part): a failure prints both expressions and both strings.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace ft::testing {

inline ::testing::AssertionResult contains_text(const char* text_expression,
                                                const char* part_expression,
                                                const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text_expression << " is \"" << text << "\", which does not contain " << part_expression
         << " = \"" << part << "\"";
}

}  // namespace ft::testing

#define EXPECT_CONTAINS(text, part) EXPECT_PRED_FORMAT2(::ft::testing::contains_text, text, part)
