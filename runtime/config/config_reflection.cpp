// Setting and reading config fields by reflection: the one place that knows how a text value
// becomes a field of each protobuf type, so YAML, JSON and overrides accept exactly the same.
#include "runtime/config/config_reflection.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "runtime/error.h"

namespace ft::config::detail {

namespace pb = google::protobuf;

std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string level_name(const std::string& prefix) {
  return prefix.empty() ? "top level" : prefix;
}

std::string field_names(const pb::Descriptor& message) {
  std::string names;
  for (int i = 0; i < message.field_count(); ++i) {
    if (i > 0) names += ", ";
    names += message.field(i)->name();
  }
  return names;
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\n\v\f\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\n\v\f\r");
  return text.substr(first, last - first + 1);
}

// `text` without one leading '+', which from_chars does not accept; nothing when a second sign
// follows it ("+-3", "++1"), which from_chars would otherwise read as a signed value.
std::optional<std::string_view> strip_plus(std::string_view text) {
  if (text.empty() || text[0] != '+') return text;
  const std::string_view rest = text.substr(1);
  if (!rest.empty() && (rest[0] == '-' || rest[0] == '+')) return std::nullopt;
  return rest;
}

// Integers: optional sign, decimal digits, nothing else ("8.0" and "1e3" are not integers).
template <typename Int>
std::optional<std::string> parse_integer(std::string_view text, Int& value) {
  const std::optional<std::string_view> without_plus = strip_plus(text);
  if (!without_plus) return fmt::format("expected an integer, got '{}'", text);
  const std::string_view digits = *without_plus;
  const std::string range =
      fmt::format("in [{}, {}]", std::numeric_limits<Int>::min(), std::numeric_limits<Int>::max());
  if constexpr (std::is_unsigned_v<Int>) {
    if (!digits.empty() && digits[0] == '-') {
      return fmt::format("expected a non-negative integer {}, got '{}'", range, text);
    }
  }
  const auto [end, status] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (status == std::errc::result_out_of_range && end == digits.data() + digits.size()) {
    return fmt::format("expected an integer {}, got '{}'", range, text);
  }
  if (digits.empty() || status != std::errc() || end != digits.data() + digits.size()) {
    return fmt::format("expected an integer, got '{}'", text);
  }
  return std::nullopt;
}

// Numbers: decimal or scientific notation, finite ("inf", "nan", "0x10" are refused).
template <typename Float>
std::optional<std::string> parse_number(std::string_view text, Float& value) {
  const std::optional<std::string_view> without_plus = strip_plus(text);
  if (!without_plus) return fmt::format("expected a number, got '{}'", text);
  const std::string_view number = *without_plus;
  const auto [end, status] = std::from_chars(number.data(), number.data() + number.size(), value,
                                             std::chars_format::general);
  if (number.empty() || status == std::errc::invalid_argument ||
      end != number.data() + number.size()) {
    return fmt::format("expected a number, got '{}'", text);
  }
  if (status == std::errc::result_out_of_range || !std::isfinite(value)) {
    return fmt::format("expected a finite number, got '{}'", text);
  }
  return std::nullopt;
}

std::optional<bool> parse_bool(std::string_view text) {
  for (std::string_view word : {"true", "True", "TRUE", "yes", "Yes", "YES"}) {
    if (text == word) return true;
  }
  for (std::string_view word : {"false", "False", "FALSE", "no", "No", "NO"}) {
    if (text == word) return false;
  }
  return std::nullopt;
}

}  // namespace

std::string unknown_key_message(const pb::Descriptor& message, const std::string& prefix,
                                const std::string& key) {
  std::string closest;
  size_t closest_distance = 3;  // suggest only near misses: at most two edits
  for (int i = 0; i < message.field_count(); ++i) {
    const size_t distance = edit_distance(key, message.field(i)->name());
    if (distance < closest_distance) {
      closest_distance = distance;
      closest = message.field(i)->name();
    }
  }
  const std::string hint = closest.empty() ? "" : fmt::format("did you mean '{}'? ", closest);
  return fmt::format("unknown key '{}' ({}{} has: {})", join_path(prefix, key), hint,
                     level_name(prefix), field_names(message));
}

std::string expected_kind(const pb::FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return "an integer";
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return "true or false";
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return "one of the names of " + field.enum_type()->name();
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      return fmt::format("a map with keys {}", field_names(*field.message_type()));
  }
  return "a value";
}

std::optional<std::string> set_scalar(pb::Message& message, const pb::FieldDescriptor& field,
                                      const std::string& raw_text) {
  FT_CHECK(!field.is_repeated() && field.cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE,
           "config field {} is not a scalar", field.full_name());
  const pb::Reflection& reflection = *message.GetReflection();
  // Strings keep their text as written; other types ignore surrounding blanks.
  const std::string_view text = trim(raw_text);
  std::optional<std::string> problem;
  switch (field.cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int32_t value = 0;
      if (!(problem = parse_integer(text, value))) reflection.SetInt32(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t value = 0;
      if (!(problem = parse_integer(text, value))) reflection.SetInt64(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t value = 0;
      if (!(problem = parse_integer(text, value))) reflection.SetUInt32(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t value = 0;
      if (!(problem = parse_integer(text, value))) reflection.SetUInt64(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: {
      double value = 0;
      if (!(problem = parse_number(text, value))) reflection.SetDouble(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      float value = 0;
      if (!(problem = parse_number(text, value))) reflection.SetFloat(&message, &field, value);
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      const std::optional<bool> value = parse_bool(text);
      if (value) {
        reflection.SetBool(&message, &field, *value);
      } else {
        problem = fmt::format("expected true or false, got '{}'", text);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING:
      reflection.SetString(&message, &field, raw_text);
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumDescriptor& type = *field.enum_type();
      const pb::EnumValueDescriptor* value = type.FindValueByName(std::string(text));
      if (value) {
        reflection.SetEnum(&message, &field, value);
      } else {
        std::string names;
        for (int i = 0; i < type.value_count(); ++i) {
          names += (i > 0 ? ", " : "") + type.value(i)->name();
        }
        problem = fmt::format("expected one of {}, got '{}'", names, text);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      break;  // refused above
  }
  return problem;
}

std::string format_scalar(const pb::Message& message, const pb::FieldDescriptor& field) {
  const pb::Reflection& reflection = *message.GetReflection();
  switch (field.cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return fmt::format("{}", reflection.GetInt32(message, &field));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return fmt::format("{}", reflection.GetInt64(message, &field));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return fmt::format("{}", reflection.GetUInt32(message, &field));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return fmt::format("{}", reflection.GetUInt64(message, &field));
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return fmt::format("{}", reflection.GetDouble(message, &field));
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return fmt::format("{}", reflection.GetFloat(message, &field));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return reflection.GetBool(message, &field) ? "true" : "false";
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return reflection.GetString(message, &field);
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return reflection.GetEnum(message, &field)->name();
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  ft::fail("config field {} is a section, not a value", field.full_name());
}

std::string format_default(const pb::FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return fmt::format("{}", field.default_value_int32());
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return fmt::format("{}", field.default_value_int64());
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return fmt::format("{}", field.default_value_uint32());
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return fmt::format("{}", field.default_value_uint64());
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return fmt::format("{}", field.default_value_double());
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return fmt::format("{}", field.default_value_float());
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return field.default_value_bool() ? "true" : "false";
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return field.default_value_string();
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return field.default_value_enum()->name();
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  ft::fail("config field {} is a section and has no default value", field.full_name());
}

const std::string& field_doc(const pb::FieldDescriptor& field) {
  return field.options().GetExtension(ft::config::doc);
}

}  // namespace ft::config::detail
