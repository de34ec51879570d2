// The run configuration: reading it from YAML, JSON or protobuf text format, `key=value`
// overrides, validation, and the `--help` listing. The schema, defaults and docs all live in
// ft_config.proto; this code walks it by reflection, so a new field needs no edit here.
#pragma once

#include <string>

#include "runtime/config/ft_config.pb.h"

namespace ft::config {

// Loads YAML (.yaml/.yml), JSON (.json) or protobuf text format
// (.txtpb/.textproto/.pbtxt/.prototxt); any other extension is an error. Does not validate.
RunConfig load_file(const std::string& path);

// Parses `content` given as format "yaml", "json" or "text"; `origin` (a file name) starts every
// error message, e.g. "run.yaml:7: unknown key 'optim.lrr' (optim has: lr, ...)".
RunConfig parse(const std::string& content, const std::string& format, const std::string& origin);

// Applies one "a.b.c=value" assignment, e.g. "optim.lr=1e-4" or "data.shuffle=false". Blanks
// around the key and the value are ignored ("output_dir= /tmp/x" sets "/tmp/x").
void apply_override(RunConfig& config, const std::string& assignment);

// Range and choice checks on every field; throws ft::Error listing each offending field by its
// full path, its value and what is expected.
void validate(const RunConfig& config);

// Every field (full dotted path, type, default, doc), grouped by section, for `ft_train --help`.
std::string help_text();

// Protobuf text format of the fields that are set, for storing the config inside checkpoints.
std::string to_text(const RunConfig& config);
RunConfig from_text(const std::string& text, const std::string& origin);

// A scalar field's value (its default when unset) by dotted path: get_field(c, "optim.lr") is
// "0.0003". Strings come back as written, without quotes.
std::string get_field(const RunConfig& config, const std::string& path);

}  // namespace ft::config
