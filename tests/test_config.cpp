// The run configuration: YAML, JSON and text format read the same; errors name the file, line
// and key; overrides, validation, --help and the checkpoint round-trip.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/error.h"
#include "tests/support/temp_dir.h"

namespace ft::config {
namespace {

using ft::testing::TempDir;

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;

const std::string kFixtures = std::string(FT_TEST_DATA_DIR) + "/config";

// The message of the ft::Error that `action` throws; a test failure when it throws none.
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ft::Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an ft::Error";
  return "";
}

// Evaluates `text` once: it is often an error_of(...) call.
#define EXPECT_CONTAINS(text, part)                                              \
  do {                                                                           \
    const std::string whole_text = (text);                                       \
    EXPECT_NE(whole_text.find(part), std::string::npos) << "in: " << whole_text; \
  } while (0)

std::string yaml_error(const std::string& yaml) {
  return error_of([&] { parse(yaml, "yaml", "run.yaml"); });
}

// A config that passes validate(), for tests that break one field of it.
RunConfig valid_config() {
  return parse("model: {preset: tiny-llama}\ndata: {train_file: train.jsonl}\n", "yaml", "ok.yaml");
}

// A fresh directory for files a test writes, removed at the end.
// Every scalar field's dotted path, found by walking the schema.
void collect_leaf_paths(const google::protobuf::Descriptor& message, const std::string& prefix,
                        std::vector<std::string>& paths) {
  for (int i = 0; i < message.field_count(); ++i) {
    const auto& field = *message.field(i);
    const std::string path = prefix.empty() ? field.name() : prefix + "." + field.name();
    if (field.message_type()) {
      collect_leaf_paths(*field.message_type(), path, paths);
    } else {
      paths.push_back(path);
    }
  }
}

TEST(ConfigParse, YamlJsonAndTextFormatOfOneRunParseEqual) {
  const RunConfig from_yaml = load_file(kFixtures + "/run.yaml");
  const RunConfig from_json = load_file(kFixtures + "/run.json");
  const RunConfig from_text_format = load_file(kFixtures + "/run.txtpb");
  EXPECT_TRUE(MessageDifferencer::Equals(from_yaml, from_json))
      << from_yaml.DebugString() << "\nvs\n"
      << from_json.DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(from_yaml, from_text_format))
      << from_yaml.DebugString() << "\nvs\n"
      << from_text_format.DebugString();
  EXPECT_EQ(from_yaml.model().preset(), "tiny-llama");
  EXPECT_EQ(from_yaml.data().shuffle(), false);
  EXPECT_EQ(from_yaml.optim().lr(), 1e-4);
  EXPECT_EQ(from_yaml.train().micro_batch_size(), 4);
  EXPECT_EQ(from_yaml.seed(), 42u);
  EXPECT_EQ(from_yaml.dtype(), "fp64");
  EXPECT_NO_THROW(validate(from_yaml));
}

TEST(ConfigParse, UnsetFieldsTakeTheSchemaDefaults) {
  const RunConfig config = parse("data:\n  seq_len: 64\n", "yaml", "run.yaml");
  EXPECT_FALSE(config.has_model());
  EXPECT_FALSE(config.data().has_format());
  EXPECT_EQ(get_field(config, "data.seq_len"), "64");
  EXPECT_EQ(get_field(config, "data.format"), "auto");
  EXPECT_EQ(get_field(config, "data.shuffle"), "true");
  EXPECT_EQ(get_field(config, "optim.lr"), "0.0003");
  EXPECT_EQ(get_field(config, "optim.eps"), "1e-08");
  EXPECT_EQ(get_field(config, "seed"), "1234");
  EXPECT_EQ(get_field(config, "output_dir"), "runs/ft");
  // An empty file or one with only comments is a config of defaults.
  EXPECT_TRUE(MessageDifferencer::Equals(parse("", "yaml", "e.yaml"), RunConfig()));
  EXPECT_TRUE(MessageDifferencer::Equals(parse("# nothing\n", "yaml", "e.yaml"), RunConfig()));
}

TEST(ConfigParse, UnknownKeyNamesFileLineAndKeyPath) {
  const std::string error = yaml_error("model:\n  preset: tiny-llama\noptim:\n  lrr: 0.1\n");
  EXPECT_CONTAINS(error, "run.yaml:4: unknown key 'optim.lrr'");
  EXPECT_CONTAINS(error, "did you mean 'lr'?");
  EXPECT_CONTAINS(error, "optim has: lr, min_lr_ratio, schedule, warmup_steps");
}

TEST(ConfigParse, NestedAndTopLevelUnknownKeys) {
  const std::string nested = yaml_error("data:\n  seq_len: 8\n  trian_file: x.jsonl\n");
  EXPECT_CONTAINS(nested, "run.yaml:3: unknown key 'data.trian_file'");
  EXPECT_CONTAINS(nested, "did you mean 'train_file'?");
  EXPECT_CONTAINS(nested, "data has: train_file, valid_file");

  const std::string top = yaml_error("seed: 1\nlearning_rate: 0.1\n");
  EXPECT_CONTAINS(top, "run.yaml:2: unknown key 'learning_rate'");
  EXPECT_CONTAINS(top, "top level has: model, data, optim");
  EXPECT_EQ(top.find("did you mean"), std::string::npos) << top;
}

TEST(ConfigParse, BadValueTypeNamesTheKey) {
  EXPECT_EQ(yaml_error("seed: 1\ntrain:\n  micro_batch_size: eight\n"),
            "run.yaml:3: train.micro_batch_size: expected an integer, got 'eight'");
  EXPECT_EQ(yaml_error("optim:\n  lr: fast\n"),
            "run.yaml:2: optim.lr: expected a number, got 'fast'");
  EXPECT_EQ(yaml_error("data:\n  shuffle: maybe\n"),
            "run.yaml:2: data.shuffle: expected true or false, got 'maybe'");
}

TEST(ConfigParse, IntegersMustBeIntegralAndInRange) {
  EXPECT_CONTAINS(yaml_error("train: {epochs: 2.5}"),
                  "train.epochs: expected an integer, got '2.5'");
  EXPECT_CONTAINS(yaml_error("train: {epochs: 1e3}"),
                  "train.epochs: expected an integer, got '1e3'");
  EXPECT_CONTAINS(yaml_error("train: {epochs: 3000000000}"),
                  "train.epochs: expected an integer in [-2147483648, 2147483647], got "
                  "'3000000000'");
  EXPECT_CONTAINS(yaml_error("seed: -1"), "seed: expected a non-negative integer");
  EXPECT_EQ(parse("seed: 18446744073709551615", "yaml", "r.yaml").seed(), 18446744073709551615u);
  EXPECT_EQ(parse("train: {max_steps: +7}", "yaml", "r.yaml").train().max_steps(), 7);
}

TEST(ConfigParse, OnlyOneSignIsAccepted) {
  EXPECT_EQ(yaml_error("train: {max_steps: +-3}"),
            "run.yaml:1: train.max_steps: expected an integer, got '+-3'");
  EXPECT_EQ(yaml_error("train: {max_steps: ++1}"),
            "run.yaml:1: train.max_steps: expected an integer, got '++1'");
  EXPECT_EQ(yaml_error("seed: +-3"), "run.yaml:1: seed: expected an integer, got '+-3'");
  EXPECT_EQ(yaml_error("optim: {lr: +-1e-3}"),
            "run.yaml:1: optim.lr: expected a number, got '+-1e-3'");
  EXPECT_EQ(yaml_error("optim: {lr: ++1}"), "run.yaml:1: optim.lr: expected a number, got '++1'");
  RunConfig config;
  EXPECT_EQ(error_of([&] { apply_override(config, "optim.beta1=+-0.5"); }),
            "override 'optim.beta1=+-0.5': optim.beta1: expected a number, got '+-0.5'");
  // One sign of either kind still reads.
  EXPECT_EQ(parse("optim: {lr: +1e-3}", "yaml", "r.yaml").optim().lr(), 1e-3);
  EXPECT_EQ(parse("train: {max_steps: -3}", "yaml", "r.yaml").train().max_steps(), -3);
}

TEST(ConfigParse, NumbersMustBeFinite) {
  EXPECT_CONTAINS(yaml_error("optim: {lr: .inf}"), "optim.lr: expected a number, got '.inf'");
  EXPECT_CONTAINS(yaml_error("optim: {lr: nan}"), "optim.lr: expected a finite number, got 'nan'");
  EXPECT_CONTAINS(yaml_error("optim: {lr: 1e999}"), "optim.lr: expected a finite number");
  EXPECT_EQ(parse("optim: {lr: 2}", "yaml", "r.yaml").optim().lr(), 2.0);
}

TEST(ConfigParse, BooleansAcceptTrueFalseYesNo) {
  EXPECT_FALSE(parse("data: {shuffle: false}", "yaml", "r.yaml").data().shuffle());
  EXPECT_FALSE(parse("data: {shuffle: no}", "yaml", "r.yaml").data().shuffle());
  EXPECT_TRUE(parse("data: {shuffle: Yes}", "yaml", "r.yaml").data().shuffle());
  EXPECT_TRUE(parse("data: {shuffle: TRUE}", "yaml", "r.yaml").data().shuffle());
  EXPECT_CONTAINS(yaml_error("data: {shuffle: 1}"), "data.shuffle: expected true or false");
}

TEST(ConfigParse, StringsAreTakenAsWritten) {
  const RunConfig config = parse("model: {preset: 123}\noutput_dir: 'yes'\n", "yaml", "r.yaml");
  EXPECT_EQ(config.model().preset(), "123");
  EXPECT_EQ(config.output_dir(), "yes");
}

TEST(ConfigParse, ScalarWhereMapIsExpectedAndViceVersa) {
  const std::string scalar_for_map = yaml_error("seed: 3\noptim: fast\n");
  EXPECT_CONTAINS(scalar_for_map, "run.yaml:2: optim: expected a map with keys lr, min_lr_ratio");
  EXPECT_CONTAINS(scalar_for_map, "got 'fast'");
  EXPECT_EQ(yaml_error("optim:\n  lr:\n    peak: 1\n"),
            "run.yaml:2: optim.lr: expected a number, got a map");
  EXPECT_EQ(yaml_error("data:\n  train_file: [a, b]\n"),
            "run.yaml:2: data.train_file: expected a string, got a list");
  EXPECT_CONTAINS(yaml_error("model:\ndata: {seq_len: 8}\n"),
                  "run.yaml:1: model: expected a map with keys preset, hf_config");
  EXPECT_CONTAINS(yaml_error("seed:\n"), "run.yaml:1: seed: expected an integer, got nothing");
  EXPECT_CONTAINS(yaml_error("- seed: 1\n"), "run.yaml:1: expected a map of config keys");
  EXPECT_CONTAINS(yaml_error("? [a]\n: 1\n"), "run.yaml:1: expected a key name at the top level");
}

TEST(ConfigParse, DuplicateKeysAreErrors) {
  EXPECT_EQ(yaml_error("seed: 1\noptim:\n  lr: 0.1\n  beta1: 0.8\n  lr: 0.2\n"),
            "run.yaml:5: duplicate key 'optim.lr' (first given at line 3)");
  EXPECT_CONTAINS(yaml_error("seed: 1\nseed: 2\n"), "run.yaml:2: duplicate key 'seed'");
  EXPECT_CONTAINS(error_of([] { parse("{\"seed\": 1,\n \"seed\": 2}", "json", "run.json"); }),
                  "run.json:2: duplicate key 'seed'");
}

TEST(ConfigParse, MergeKeysAreRefusedByName) {
  EXPECT_EQ(yaml_error("train:\n  epochs: 2\n  <<: {max_steps: 5}\n"),
            "run.yaml:3: YAML merge keys (<<) are not supported");
  EXPECT_EQ(yaml_error("optim: &shared {lr: 0.1}\ntrain:\n  <<: *shared\n"),
            "run.yaml:3: YAML merge keys (<<) are not supported");
  EXPECT_EQ(yaml_error("seed: 1\n<<: {dtype: fp64}\n"),
            "run.yaml:2: YAML merge keys (<<) are not supported");
  // A quoted '<<' is an ordinary (unknown) key, in YAML and JSON.
  EXPECT_CONTAINS(yaml_error("train:\n  '<<': 1\n"), "run.yaml:2: unknown key 'train.<<'");
  EXPECT_CONTAINS(error_of([] { parse("{\"train\": {\"<<\": 1}}", "json", "run.json"); }),
                  "run.json:1: unknown key 'train.<<'");
  // Plain aliases still work.
  const RunConfig config = parse("optim: {beta1: &b 0.5, beta2: *b}\n", "yaml", "r.yaml");
  EXPECT_EQ(config.optim().beta2(), 0.5);
}

TEST(ConfigParse, ContentAfterTheTopLevelJsonObjectIsAnError) {
  const auto json_error = [](const std::string& json) {
    return error_of([&] { parse(json, "json", "run.json"); });
  };
  EXPECT_EQ(json_error("{\"seed\": 1}\n{\"seed\": 2}\n"),
            "run.json:2: unexpected content after the top-level JSON object");
  EXPECT_EQ(json_error("{\"seed\": 1} x"),
            "run.json:1: unexpected content after the top-level JSON object");
  EXPECT_EQ(json_error("{\"seed\": 1}\n---\n"),
            "run.json:2: unexpected content after the top-level JSON object");
  // yaml-cpp alone never gets past a ',' here (it makes empty documents until memory runs out).
  EXPECT_EQ(json_error("{\"seed\": 1},\n"),
            "run.json:1:12: JSON syntax error: unexpected ',' after the top-level value");
  EXPECT_EQ(json_error("{\"seed\": 1}\n  , {\"seed\": 2}\n"),
            "run.json:2:3: JSON syntax error: unexpected ',' after the top-level value");
  EXPECT_EQ(yaml_error("{seed: 1},\n"),
            "run.yaml:1:10: YAML syntax error: unexpected ',' after the top-level value");
  EXPECT_EQ(parse("{\"seed\": 3}\n", "json", "run.json").seed(), 3u);
}

TEST(ConfigParse, YamlSyntaxErrorHasLine) {
  const std::string error = yaml_error("seed: 1\noptim:\n  lr: [0.1\n  beta1: 0.9\n");
  EXPECT_CONTAINS(error, "run.yaml:");
  EXPECT_CONTAINS(error, "YAML syntax error");
  const std::string indent = yaml_error("seed: 1\ndata:\n  seq_len: 8\n    shuffle: no\n");
  EXPECT_CONTAINS(indent, "run.yaml:4:");
  EXPECT_EQ(error_of([] { parse("seed: 1\n---\nseed: 2\n", "yaml", "two.yaml"); }),
            "two.yaml: expected one YAML document, found 2 (separated by '---')");
}

TEST(ConfigParse, JsonErrorsCarryLines) {
  const std::string json =
      "{\n\t\"optim\": {\n\t\t\"lr\": 0.1,\n\t\t\"shedule\": \"linear\"\n\t}\n}\n";
  EXPECT_CONTAINS(error_of([&] { parse(json, "json", "run.json"); }),
                  "run.json:4: unknown key 'optim.shedule' (did you mean 'schedule'?");
  EXPECT_CONTAINS(error_of([] { parse("{\"seed\": 1,\n\"data\": {\n", "json", "cut.json"); }),
                  "JSON syntax error");
}

TEST(ConfigParse, TextFormatErrorsCarryLineAndColumn) {
  const std::string unknown =
      error_of([] { parse("seed: 1\noptim { lrr: 0.1 }\n", "text", "r.txtpb"); });
  EXPECT_CONTAINS(unknown, "r.txtpb:2:");
  EXPECT_CONTAINS(unknown, "no field named \"lrr\". (OptimConfig has: lr, min_lr_ratio");
  const std::string bad_value =
      error_of([] { parse("train {\n  epochs: two\n}\n", "text", "r.txtpb"); });
  EXPECT_CONTAINS(bad_value, "r.txtpb:2:11: ");
}

TEST(ConfigLoad, MissingFileUnknownExtensionAndUnknownFormat) {
  const TempDir dir;
  const std::string missing = dir.path("absent.yaml");
  const std::string error = error_of([&] { load_file(missing); });
  EXPECT_CONTAINS(error, "cannot read config file '" + missing + "'");
  EXPECT_CONTAINS(error, "No such file");
  const std::string ini = dir.write("run.ini", "seed = 1\n");
  EXPECT_CONTAINS(error_of([&] { load_file(ini); }), "unknown extension '.ini'");
  EXPECT_CONTAINS(error_of([] { parse("seed: 1", "toml", "r.toml"); }),
                  "r.toml: unknown config format 'toml'");
}

TEST(ConfigLoad, FileErrorsNameThePath) {
  const TempDir dir;
  const std::string yml = dir.write("run.yml", "seed: 5\ntrain:\n  epochs: many\n");
  EXPECT_EQ(error_of([&] { load_file(yml); }),
            yml + ":3: train.epochs: expected an integer, got 'many'");
  const std::string text = dir.write("run.textproto", "seed: 5\nseeed: 6\n");
  EXPECT_CONTAINS(error_of([&] { load_file(text); }), text + ":2:");
  EXPECT_EQ(load_file(dir.write("run.YAML", "seed: 9\n")).seed(), 9u);
}

TEST(ConfigOverride, SetsFieldsOfEveryType) {
  RunConfig config = load_file(kFixtures + "/run.yaml");
  apply_override(config, "optim.lr=2.5e-5");
  apply_override(config, "train.max_steps=10");
  apply_override(config, "data.shuffle=true");
  apply_override(config, "data.train_file=other.jsonl");
  apply_override(config, "seed=7");
  apply_override(config, "model.max_position_embeddings = 64");
  EXPECT_EQ(config.optim().lr(), 2.5e-5);
  EXPECT_EQ(config.train().max_steps(), 10);
  EXPECT_TRUE(config.data().shuffle());
  EXPECT_EQ(config.data().train_file(), "other.jsonl");
  EXPECT_EQ(config.seed(), 7u);
  EXPECT_EQ(config.model().max_position_embeddings(), 64);
  EXPECT_EQ(config.optim().schedule(), "linear");  // untouched fields stay

  RunConfig empty;
  apply_override(empty, "checkpoint.keep_last=5");
  EXPECT_TRUE(empty.has_checkpoint());
  EXPECT_EQ(empty.checkpoint().keep_last(), 5);
  apply_override(empty, "output_dir=a=b");  // only the first '=' splits
  EXPECT_EQ(empty.output_dir(), "a=b");
}

TEST(ConfigOverride, BlanksAroundKeyAndValueAreDropped) {
  RunConfig config = valid_config();
  apply_override(config, "output_dir= /tmp/x");
  apply_override(config, "data.format= chat");
  apply_override(config, " data.valid_file =\tvalid.jsonl \r\n");
  apply_override(config, "\toptim.lr=\v2e-4\f");
  apply_override(config, "seed =  7");
  EXPECT_EQ(config.output_dir(), "/tmp/x");
  EXPECT_EQ(config.data().format(), "chat");
  EXPECT_EQ(config.data().valid_file(), "valid.jsonl");
  EXPECT_EQ(config.optim().lr(), 2e-4);
  EXPECT_EQ(config.seed(), 7u);
  EXPECT_NO_THROW(validate(config));
  apply_override(config, "output_dir=  ");
  EXPECT_EQ(config.output_dir(), "");
  // Config files keep their strings exactly.
  EXPECT_EQ(parse("output_dir: ' /tmp/x '\n", "yaml", "r.yaml").output_dir(), " /tmp/x ");
  EXPECT_EQ(parse("{\"output_dir\": \" /tmp/x\"}", "json", "r.json").output_dir(), " /tmp/x");
  EXPECT_EQ(parse("output_dir: \" /tmp/x\"", "text", "r.txtpb").output_dir(), " /tmp/x");
}

TEST(ConfigOverride, UnknownKeysAndBadValuesAreErrors) {
  RunConfig config;
  const std::string unknown = error_of([&] { apply_override(config, "optim.lrr=1e-4"); });
  EXPECT_CONTAINS(unknown, "override 'optim.lrr=1e-4': unknown key 'optim.lrr'");
  EXPECT_CONTAINS(unknown, "optim has: lr, min_lr_ratio");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "optimm.lr=1"); }),
                  "unknown key 'optimm' (did you mean 'optim'? top level has: model, data");
  EXPECT_EQ(error_of([&] { apply_override(config, "train.max_steps=ten"); }),
            "override 'train.max_steps=ten': train.max_steps: expected an integer, got 'ten'");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "data.shuffle=perhaps"); }),
                  "data.shuffle: expected true or false, got 'perhaps'");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "optim=1"); }),
                  "optim is a section (lr, min_lr_ratio");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "seed.low=1"); }),
                  "seed is a uint64 value, not a section, so it has no key 'low'");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "optim.lr"); }), "expected key=value");
  EXPECT_CONTAINS(error_of([&] { apply_override(config, "optim..lr=1"); }), "is not a field path");
  EXPECT_TRUE(MessageDifferencer::Equals(config, RunConfig())) << config.DebugString();
}

TEST(ConfigValidate, AcceptsAValidConfig) {
  EXPECT_NO_THROW(validate(valid_config()));
  RunConfig with_hf = valid_config();
  with_hf.mutable_model()->clear_preset();
  with_hf.mutable_model()->set_hf_config("config.json");
  EXPECT_NO_THROW(validate(with_hf));
}

TEST(ConfigValidate, ModelNeedsExactlyOneOfPresetAndHfConfig) {
  RunConfig neither = valid_config();
  neither.mutable_model()->clear_preset();
  EXPECT_CONTAINS(error_of([&] { validate(neither); }),
                  "config field model: set exactly one of model.preset");
  EXPECT_CONTAINS(error_of([&] { validate(neither); }), "neither is set");
  RunConfig both = valid_config();
  both.mutable_model()->set_hf_config("config.json");
  EXPECT_CONTAINS(error_of([&] { validate(both); }),
                  "both are set (model.preset = 'tiny-llama', model.hf_config = 'config.json')");
}

TEST(ConfigValidate, NamesTheFieldAndWhatIsExpected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"optim.lr=-1", "config field optim.lr = -1: expected a positive number"},
      {"optim.lr=0", "config field optim.lr = 0: expected a positive number"},
      {"optim.schedule=step",
       "config field optim.schedule = 'step': expected one of cosine, linear, constant"},
      {"optim.min_lr_ratio=1.5",
       "config field optim.min_lr_ratio = 1.5: expected a number in [0, 1]"},
      {"optim.beta2=1", "config field optim.beta2 = 1: expected a number in [0, 1)"},
      {"optim.eps=0", "config field optim.eps = 0: expected a positive number"},
      {"optim.grad_clip=-0.5", "config field optim.grad_clip = -0.5: expected a number >= 0"},
      {"optim.warmup_steps=-3", "config field optim.warmup_steps = -3: expected an integer >= 0"},
      {"data.train_file=", "config field data.train_file is empty"},
      {"data.format=csv",
       "config field data.format = 'csv': expected one of auto, chat, prompt_completion, text"},
      {"data.seq_len=0", "config field data.seq_len = 0: expected a positive integer"},
      {"data.too_long=wrap", "config field data.too_long = 'wrap': expected one of truncate, drop"},
      {"train.micro_batch_size=0",
       "config field train.micro_batch_size = 0: expected an integer >= 1"},
      {"train.grad_accum_steps=0",
       "config field train.grad_accum_steps = 0: expected an integer >= 1"},
      {"train.epochs=0", "config field train.epochs = 0: expected an integer >= 1"},
      {"train.max_steps=-1", "config field train.max_steps = -1: expected an integer >= 0"},
      {"train.log_every=0", "config field train.log_every = 0: expected an integer >= 1"},
      {"checkpoint.keep_last=0", "config field checkpoint.keep_last = 0: expected an integer >= 1"},
      {"checkpoint.save_every=-5",
       "config field checkpoint.save_every = -5: expected an integer >= 0"},
      {"parallel.tp=0", "config field parallel.tp = 0: expected an integer >= 1"},
      {"device=tpu", "config field device = 'tpu': expected one of auto, cpu, cuda"},
      {"dtype=bf16", "config field dtype = 'bf16': expected one of fp32, fp64"},
      {"threads=-1", "config field threads = -1: expected an integer >= 0"},
      {"output_dir=",
       "config field output_dir is empty: expected a folder for metrics and checkpoints"},
      {"train.micro_batch_size=65537",
       "config field train.micro_batch_size = 65537: expected at most 65536"},
      {"train.grad_accum_steps=2000000000",
       "config field train.grad_accum_steps = 2000000000: expected at most 65536"},
      {"threads=1025", "config field threads = 1025: expected at most 1024"},
      {"data.seq_len=1048577", "config field data.seq_len = 1048577: expected at most 1048576"},
  };
  for (const auto& [assignment, expected] : cases) {
    RunConfig config = valid_config();
    apply_override(config, assignment);
    EXPECT_CONTAINS(error_of([&] { validate(config); }), expected);
  }
}

TEST(ConfigValidate, AcceptsSizesUpToTheirCaps) {
  RunConfig config = valid_config();
  apply_override(config, "train.micro_batch_size=65536");
  apply_override(config, "train.grad_accum_steps=65536");
  apply_override(config, "threads=1024");
  apply_override(config, "data.seq_len=1048576");
  EXPECT_NO_THROW(validate(config));
}

TEST(ConfigValidate, ReportsEveryProblemAtOnce) {
  RunConfig config = valid_config();
  apply_override(config, "optim.lr=-1");
  apply_override(config, "train.epochs=0");
  const std::string error = error_of([&] { validate(config); });
  EXPECT_CONTAINS(error, "2 invalid config fields:");
  EXPECT_CONTAINS(error, "optim.lr = -1");
  EXPECT_CONTAINS(error, "train.epochs = 0");
}

TEST(ConfigHelp, ListsEveryFieldWithTypeDefaultAndDoc) {
  const std::string help = help_text();
  std::vector<std::string> paths;
  collect_leaf_paths(*RunConfig::descriptor(), "", paths);
  ASSERT_GT(paths.size(), 30u);
  for (const std::string& path : paths) {
    EXPECT_CONTAINS(help, "  " + path + " (");
  }
  EXPECT_CONTAINS(help, "  optim.lr (double, default 0.0003)\n      Peak learning rate.\n");
  EXPECT_CONTAINS(help, "  data.format (string, default \"auto\")\n");
  EXPECT_CONTAINS(help, "  seed (uint64, default 1234)\n");
  EXPECT_CONTAINS(help, "  data.shuffle (bool, default true)\n");
  EXPECT_CONTAINS(help, "optim: AdamW and the learning-rate schedule.\n");
  EXPECT_CONTAINS(help, "train: Batching, length of the run, evaluation and logging.\n");
  EXPECT_CONTAINS(help, "Decoupled AdamW weight decay, applied to matrices and embeddings");
}

TEST(ConfigText, ToTextAndFromTextRoundTrip) {
  RunConfig config = load_file(kFixtures + "/run.yaml");
  apply_override(config, "optim.lr=1.2345678901234567e-5");
  const std::string text = to_text(config);
  EXPECT_CONTAINS(text, "preset: \"tiny-llama\"");
  const RunConfig back = from_text(text, "checkpoint:/config");
  EXPECT_TRUE(MessageDifferencer::Equals(config, back)) << text;
  EXPECT_EQ(back.optim().lr(), 1.2345678901234567e-5);
  EXPECT_CONTAINS(error_of([] { from_text("seed: x\n", "ckpt.h5:/config"); }),
                  "ckpt.h5:/config:1:");
}

TEST(ConfigGetField, ReadsScalarsByPathAndRefusesOthers) {
  const RunConfig config = load_file(kFixtures + "/run.yaml");
  EXPECT_EQ(get_field(config, "optim.lr"), "0.0001");
  EXPECT_EQ(get_field(config, "data.shuffle"), "false");
  EXPECT_EQ(get_field(config, "model.preset"), "tiny-llama");
  EXPECT_EQ(get_field(config, "train.micro_batch_size"), "4");
  EXPECT_CONTAINS(error_of([&] { get_field(config, "optim.beta3"); }),
                  "config field 'optim.beta3': unknown key 'optim.beta3'");
  EXPECT_CONTAINS(error_of([&] { get_field(config, "train"); }), "train is a section");
}

}  // namespace
}  // namespace ft::config
