// Reading tokenizer.json: a JSON value together with its file and field path, so that every error
// names both ("tokenizer.json: field 'model.merges[3]': ...").
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.h"

namespace ft::data {

class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string path, std::shared_ptr<const std::string> file)
      : value_(&value), path_(std::move(path)), file_(std::move(file)) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  // "<file>: field '<path>'", the prefix of this field's errors.
  std::string where() const {
    return fmt::format("{}: field '{}'", *file_, path_.empty() ? "(top level)" : path_);
  }

  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    throw Error(where() + ": " + fmt::format(format, std::forward<Args>(args)...));
  }

  // A member that must be present and not null.
  JsonField operator[](std::string_view key) const {
    std::optional<JsonField> member = find(key);
    if (!member) child_path_fail(key, "is missing");
    return *member;
  }
  // A member, or nullopt when it is absent or null.
  std::optional<JsonField> find(std::string_view key) const {
    expect_object();
    const auto it = value_->find(key);
    if (it == value_->end() || it->is_null()) return std::nullopt;
    return JsonField(*it, child_path(key), file_);
  }
  bool has(std::string_view key) const { return find(key).has_value(); }
  JsonField at(size_t index) const {
    return JsonField((*value_)[index], fmt::format("{}[{}]", path_, index), file_);
  }
  size_t array_size() const {
    if (!value_->is_array()) fail("expected an array, found {}", value_->type_name());
    return value_->size();
  }

  std::string string() const {
    if (!value_->is_string()) fail("expected a string, found {}", value_->type_name());
    return value_->get<std::string>();
  }
  bool boolean() const {
    if (!value_->is_boolean()) fail("expected true or false, found {}", value_->type_name());
    return value_->get<bool>();
  }
  int64_t integer() const {
    if (!value_->is_number_integer()) fail("expected an integer, found {}", value_->type_name());
    return value_->get<int64_t>();
  }
  double number() const {
    if (!value_->is_number()) fail("expected a number, found {}", value_->type_name());
    return value_->get<double>();
  }
  std::string string_or(std::string_view key, std::string fallback) const {
    std::optional<JsonField> member = find(key);
    return member ? member->string() : std::move(fallback);
  }
  bool boolean_or(std::string_view key, bool fallback) const {
    std::optional<JsonField> member = find(key);
    return member ? member->boolean() : fallback;
  }

  void expect_object() const {
    if (!value_->is_object()) fail("expected an object, found {}", value_->type_name());
  }

 private:
  std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }
  [[noreturn]] void child_path_fail(std::string_view key, std::string_view what) const {
    throw Error(fmt::format("{}: field '{}' {}", *file_, child_path(key), what));
  }

  const nlohmann::json* value_;
  std::string path_;
  std::shared_ptr<const std::string> file_;
};

}  // namespace ft::data
