// Internal to runtime/config/: setting and reading config fields by protobuf reflection, shared
// by the YAML/JSON reader, overrides, get_field, validation and help.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <optional>
#include <string>

#include "runtime/config/ft_config.pb.h"

namespace ft::config::detail {

// "optim" + "lr" -> "optim.lr"; "" + "seed" -> "seed".
std::string join_path(const std::string& prefix, const std::string& name);

// How an error names the level a key lives at: "optim", or "top level" for the RunConfig.
std::string level_name(const std::string& prefix);

// "lr, min_lr_ratio, schedule, ...": the keys a message accepts, in declaration order.
std::string field_names(const google::protobuf::Descriptor& message);

// "unknown key 'optim.lrr' (did you mean 'lr'? optim has: lr, min_lr_ratio, ...)".
std::string unknown_key_message(const google::protobuf::Descriptor& message,
                                const std::string& prefix, const std::string& key);

// What a value of this field must look like: "an integer", "a number", "true or false", ...
std::string expected_kind(const google::protobuf::FieldDescriptor& field);

// Parses `text` per the field's type and sets it. Returns what is wrong ("expected an integer,
// got 'eight'") without the field's name, or nothing on success. Integers must be integral and in
// the range of the field's type; numbers finite; booleans true/false or yes/no.
std::optional<std::string> set_scalar(google::protobuf::Message& message,
                                      const google::protobuf::FieldDescriptor& field,
                                      const std::string& text);

// The field's value as text (its default when unset): 0.0003, true, 1234, tiny-llama.
std::string format_scalar(const google::protobuf::Message& message,
                          const google::protobuf::FieldDescriptor& field);

// The field's proto default as text.
std::string format_default(const google::protobuf::FieldDescriptor& field);

// The field's (doc) option.
const std::string& field_doc(const google::protobuf::FieldDescriptor& field);

// Reads YAML, or JSON through the YAML parser, into a RunConfig with file:line errors.
RunConfig parse_yaml(const std::string& content, const std::string& origin, bool is_json);

}  // namespace ft::config::detail
