// YAML and JSON configs: yaml-cpp builds the node tree (JSON is YAML for our purposes), then a
// walk over it sets fields by reflection, so every error can name the file, line and key path.
#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

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

// "run.yaml:3:7: " for a syntax error's position, "run.yaml: " when it has none.
std::string where_exactly(const std::string& origin, const YAML::Mark& mark) {
  if (mark.is_null()) return origin + ": ";
  return fmt::format("{}:{}:{}: ", origin, mark.line + 1, mark.column + 1);
}

// Where each document of a stream starts. yaml-cpp's LoadAll never gets past a stray ',' after
// a top-level flow collection ("{...},"): it returns empty documents at that spot until memory
// runs out. Such a stall is reported as `stray_content` instead.
struct DocumentStarts {
  std::vector<YAML::Mark> starts;
  std::optional<YAML::Mark> stray_content;
};

class DocumentStartRecorder : public YAML::EventHandler {
 public:
  explicit DocumentStartRecorder(std::vector<YAML::Mark>& starts) : starts_(starts) {}
  void OnDocumentStart(const YAML::Mark& mark) override { starts_.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::vector<YAML::Mark>& starts_;
};

DocumentStarts find_document_starts(std::istream& stream) {
  DocumentStarts documents;
  YAML::Parser parser(stream);
  DocumentStartRecorder recorder(documents.starts);
  while (parser.HandleNextDocument(recorder)) {
    const std::vector<YAML::Mark>& starts = documents.starts;
    if (starts.size() >= 2 && starts.back().pos == starts[starts.size() - 2].pos) {
      documents.stray_content = starts.back();
      break;
    }
  }
  return documents;
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
      // yaml-cpp reads a merge key as a plain key named "<<" (a quoted '<<' is tagged "!").
      if (name == "<<" && key.Tag() == "?") {
        ft::fail("{}YAML merge keys (<<) are not supported", where(origin_, key.Mark()));
      }
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
  const char* language = is_json ? "JSON" : "YAML";
  YAML::Node root;
  DocumentStarts documents;
  try {
    root = YAML::Load(text);
    std::istringstream stream(text);
    documents = find_document_starts(stream);
  } catch (const YAML::Exception& error) {
    ft::fail("{}{} syntax error: {}", where_exactly(origin, error.mark), language, error.msg);
  }
  if (documents.stray_content) {
    ft::fail("{}{} syntax error: unexpected '{}' after the top-level value",
             where_exactly(origin, *documents.stray_content), language,
             text[documents.stray_content->pos]);
  }
  if (documents.starts.size() > 1) {
    if (is_json) {
      ft::fail("{}unexpected content after the top-level JSON object",
               where(origin, documents.starts[1]));
    }
    ft::fail("{}: expected one YAML document, found {} (separated by '---')", origin,
             documents.starts.size());
  }
  RunConfig config;
  // An empty file, or only comments: all defaults.
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
