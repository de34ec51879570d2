// YAML and JSON configs: yaml-cpp builds the node tree (JSON is YAML for our purposes), then a
// walk over it sets fields by reflection, so every error can name the file, line and key path.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "runtime/config/config_reflection.h"
#include "runtime/error.h"

namespace ft::config::detail {

namespace pb = google::protobuf;

namespace {

// "run.yaml:7: " for a node yaml-cpp knows the position of, "run.yaml: " otherwise.
std::string where(const std::string& origin, const YAML::Mark& mark) {
  if (mark.is_null()) return origin + ": ";
  return fmt::format("{}:{}: ", origin, mark.line + 1);
}

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined node";
}

class YamlReader {
 public:
  explicit YamlReader(const std::string& origin) : origin_(origin) {}

  // Sets the fields of `message` from the map `node`, whose keys are below `prefix`.
  void read_map(const YAML::Node& node, pb::Message& message, const std::string& prefix) {
    const pb::Descriptor& descriptor = *message.GetDescriptor();
    std::map<std::string, int> first_line_of_key;
    for (const auto& entry : node) {
      const YAML::Node& key = entry.first;
      const YAML::Node& value = entry.second;
      if (!key.IsScalar()) {
        ft::fail("{}expected a key name {}, got {}", where(origin_, key.Mark()),
                 prefix.empty() ? "at the top level" : "in " + prefix, describe_node(key));
      }
      const std::string& name = key.Scalar();
      const std::string path = join_path(prefix, name);
      const auto [previous, inserted] = first_line_of_key.emplace(name, key.Mark().line + 1);
      if (!inserted) {
        ft::fail("{}duplicate key '{}' (first given at line {})", where(origin_, key.Mark()), path,
                 previous->second);
      }
      const pb::FieldDescriptor* field = descriptor.FindFieldByName(name);
      if (!field) {
        ft::fail("{}{}", where(origin_, key.Mark()), unknown_key_message(descriptor, prefix, name));
      }
      read_field(key.Mark(), value, message, *field, path);
    }
  }

 private:
  void read_field(const YAML::Mark& key_mark, const YAML::Node& value, pb::Message& message,
                  const pb::FieldDescriptor& field, const std::string& path) {
    if (field.cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!value.IsMap()) {
        ft::fail("{}{}: expected {}, got {}", where(origin_, key_mark), path, expected_kind(field),
                 describe_node(value));
      }
      read_map(value, *message.GetReflection()->MutableMessage(&message, &field), path);
      return;
    }
    if (!value.IsScalar()) {
      ft::fail("{}{}: expected {}, got {}", where(origin_, key_mark), path, expected_kind(field),
               describe_node(value));
    }
    if (const auto problem = set_scalar(message, field, value.Scalar())) {
      ft::fail("{}{}: {}", where(origin_, key_mark), path, *problem);
    }
  }

  const std::string& origin_;
};

}  // namespace

RunConfig parse_yaml(const std::string& content, const std::string& origin, bool is_json) {
  std::string text = content;
  // A tab in valid JSON can only be whitespace (strings escape it), and YAML refuses tabs as
  // indentation, so tabs become spaces; line numbers stay the same.
  if (is_json) std::replace(text.begin(), text.end(), '\t', ' ');
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& error) {
    const std::string position =
        error.mark.is_null()
            ? origin
            : fmt::format("{}:{}:{}", origin, error.mark.line + 1, error.mark.column + 1);
    ft::fail("{}: {} syntax error: {}", position, is_json ? "JSON" : "YAML", error.msg);
  }
  RunConfig config;
  if (documents.empty()) return config;  // an empty file, or only comments: all defaults
  if (documents.size() > 1) {
    ft::fail("{}: expected one YAML document, found {} (separated by '---')", origin,
             documents.size());
  }
  const YAML::Node& root = documents.front();
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    ft::fail("{}expected a map of config keys ({}) at the top level, got {}",
             where(origin, root.Mark()), field_names(*RunConfig::descriptor()),
             describe_node(root));
  }
  YamlReader(origin).read_map(root, config, "");
  return config;
}

}  // namespace ft::config::detail
