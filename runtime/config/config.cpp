// Loading configs by file extension, protobuf text format, `key=value` overrides, get_field and
// the --help listing. YAML/JSON reading is in config_yaml.cpp, range checks in
// config_validate.cpp.
#include "runtime/config/config.h"

#include <fmt/format.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "runtime/config/config_reflection.h"
#include "runtime/error.h"

namespace ft::config {

namespace pb = google::protobuf;
using detail::join_path;

namespace {

std::string read_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    ft::fail("cannot read config file '{}': it is a directory", path);
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) ft::fail("cannot read config file '{}': {}", path, std::strerror(errno));
  std::ostringstream content;
  content << file.rdbuf();
  if (file.bad()) ft::fail("cannot read config file '{}': {}", path, std::strerror(errno));
  return content.str();
}

// `text` without leading and trailing ASCII whitespace.
std::string trim_blanks(const std::string& text) {
  constexpr const char* kBlanks = " \t\n\v\f\r";
  const size_t first = text.find_first_not_of(kBlanks);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(kBlanks) - first + 1);
}

// Collects the text-format parser's errors as "origin:line:col: message".
class TextFormatErrors : public pb::io::ErrorCollector {
 public:
  explicit TextFormatErrors(const std::string& origin) : origin_(origin) {}

  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!messages_.empty()) messages_ += "\n";
    messages_ += fmt::format("{}:{}:{}: {}{}", origin_, line + 1, column + 1, message,
                             valid_keys_hint(message));
  }

  const std::string& messages() const { return messages_; }

 private:
  // For 'Message type "ft.config.OptimConfig" has no field named "lrr".': the keys it does have,
  // as the YAML reader lists them.
  static std::string valid_keys_hint(const std::string& message) {
    const std::string opening = "Message type \"";
    if (message.rfind(opening, 0) != 0) return "";
    const size_t end = message.find('"', opening.size());
    if (end == std::string::npos) return "";
    const pb::Descriptor* type = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
        message.substr(opening.size(), end - opening.size()));
    if (!type) return "";
    return fmt::format(" ({} has: {})", type->name(), detail::field_names(*type));
  }

  const std::string& origin_;
  std::string messages_;
};

RunConfig parse_text_format(const std::string& content, const std::string& origin) {
  RunConfig config;
  TextFormatErrors errors(origin);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(content, &config)) {
    if (errors.messages().empty())
      ft::fail("{}: not a valid protobuf text-format RunConfig", origin);
    throw ft::Error(errors.messages());
  }
  return config;
}

// The fields along a dotted path ("optim.lr" -> [optim, lr]); the last one is a scalar.
// Errors start with `context`, e.g. "override 'optim.lrr=1'".
std::vector<const pb::FieldDescriptor*> resolve_path(const std::string& path,
                                                     const std::string& context) {
  std::vector<const pb::FieldDescriptor*> fields;
  const pb::Descriptor* message = RunConfig::descriptor();
  std::string prefix;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string name = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (name.empty()) {
      ft::fail("{}: '{}' is not a field path; expected names joined by dots, e.g. optim.lr",
               context, path);
    }
    if (!message) {
      const pb::FieldDescriptor& parent = *fields.back();
      ft::fail("{}: {} is a {} value, not a section, so it has no key '{}'", context, prefix,
               parent.type_name(), name);
    }
    const pb::FieldDescriptor* field = message->FindFieldByName(name);
    if (!field) {
      ft::fail("{}: {}", context, detail::unknown_key_message(*message, prefix, name));
    }
    fields.push_back(field);
    prefix = join_path(prefix, name);
    message = field->message_type();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (message) {
    ft::fail("{}: {} is a section ({}); name one of its fields, e.g. {}.{}", context, prefix,
             detail::field_names(*message), prefix, message->field(0)->name());
  }
  return fields;
}

// Word-wraps `text` to `width` columns, each line starting with `indent`.
std::string wrap(const std::string& text, const std::string& indent, size_t width) {
  std::istringstream words(text);
  std::string word, line, out;
  while (words >> word) {
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

// Appends "  optim.lr (double, default 0.0003)" and the wrapped doc for each scalar field.
void append_scalar_fields(const pb::Descriptor& message, const std::string& prefix,
                          std::string& out) {
  for (int i = 0; i < message.field_count(); ++i) {
    const pb::FieldDescriptor& field = *message.field(i);
    if (field.message_type()) continue;
    const bool quoted = field.cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING;
    const std::string value = detail::format_default(field);
    out += fmt::format("  {} ({}, default {})\n", join_path(prefix, field.name()),
                       field.type_name(), quoted ? fmt::format("\"{}\"", value) : value);
    out += wrap(detail::field_doc(field), "      ", 100);
  }
}

// Appends one section per sub-message, headed by its doc, with its scalars and its own sections.
void append_sections(const pb::Descriptor& message, const std::string& prefix, std::string& out) {
  for (int i = 0; i < message.field_count(); ++i) {
    const pb::FieldDescriptor& field = *message.field(i);
    if (!field.message_type()) continue;
    const std::string path = join_path(prefix, field.name());
    out += fmt::format("{}: {}\n", path, detail::field_doc(field));
    append_scalar_fields(*field.message_type(), path, out);
    out += "\n";
    append_sections(*field.message_type(), path, out);
  }
}

}  // namespace

RunConfig parse(const std::string& content, const std::string& format, const std::string& origin) {
  if (format == "yaml") return detail::parse_yaml(content, origin, /*is_json=*/false);
  if (format == "json") return detail::parse_yaml(content, origin, /*is_json=*/true);
  if (format == "text") return parse_text_format(content, origin);
  ft::fail("{}: unknown config format '{}' (expected yaml, json or text)", origin, format);
}

RunConfig load_file(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string format;
  if (extension == ".yaml" || extension == ".yml") {
    format = "yaml";
  } else if (extension == ".json") {
    format = "json";
  } else if (extension == ".txtpb" || extension == ".textproto" || extension == ".pbtxt" ||
             extension == ".prototxt") {
    format = "text";
  } else {
    ft::fail(
        "config file '{}': unknown extension '{}' (expected .yaml or .yml, .json, or protobuf "
        "text format .txtpb, .textproto, .pbtxt, .prototxt)",
        path, extension);
  }
  return parse(read_file(path), format, path);
}

void apply_override(RunConfig& config, const std::string& assignment) {
  const std::string context = fmt::format("override '{}'", assignment);
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos) {
    ft::fail("{}: expected key=value, e.g. optim.lr=1e-4", context);
  }
  // Blanks around the key and the value are dropped, for strings too: "output_dir= /tmp/x" is
  // "/tmp/x" (shells and launch scripts easily add them; a config file keeps its exact strings).
  const std::string path = trim_blanks(assignment.substr(0, equals));
  const std::string value = trim_blanks(assignment.substr(equals + 1));
  const std::vector<const pb::FieldDescriptor*> fields = resolve_path(path, context);
  // Works on a copy so that a refused value leaves `config` as it was (no empty sections).
  RunConfig updated = config;
  pb::Message* message = &updated;
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    message = message->GetReflection()->MutableMessage(message, fields[i]);
  }
  if (const auto problem = detail::set_scalar(*message, *fields.back(), value)) {
    ft::fail("{}: {}: {}", context, path, *problem);
  }
  config = std::move(updated);
}

std::string get_field(const RunConfig& config, const std::string& path) {
  const std::vector<const pb::FieldDescriptor*> fields =
      resolve_path(path, fmt::format("config field '{}'", path));
  const pb::Message* message = &config;
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    message = &message->GetReflection()->GetMessage(*message, fields[i]);
  }
  return detail::format_scalar(*message, *fields.back());
}

std::string help_text() {
  std::string out =
      "Run configuration: write it as YAML, JSON or protobuf text format; override any field as\n"
      "key=value (e.g. optim.lr=1e-4). Fields, with type and default:\n\n";
  append_sections(*RunConfig::descriptor(), "", out);
  out += "Run-wide settings (top level)\n";
  append_scalar_fields(*RunConfig::descriptor(), "", out);
  return out;
}

std::string to_text(const RunConfig& config) {
  std::string text;
  FT_CHECK(pb::TextFormat::PrintToString(config, &text), "printing the run config failed");
  return text;
}

RunConfig from_text(const std::string& text, const std::string& origin) {
  return parse_text_format(text, origin);
}

}  // namespace ft::config
