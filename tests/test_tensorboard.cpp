// TensorBoard event files: CRC32C, record framing, and scalars written then read back (by ft and
// by the tensorboard package's own reader).
#include "runtime/train/tensorboard.h"
#include "tests/support/gradcheck.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/train/metrics.h"

namespace ft {
namespace {

using ft::testing::error_message;
using ft::testing::TempDir;

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Size of the record starting at `offset`: 8 length bytes, 4 CRC, data, 4 CRC.
size_t record_size(const std::string& bytes, size_t offset) {
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i)
    length |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return 8 + 4 + length + 4;
}

TEST(TensorBoard, Crc32cKnownVectors) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
}

TEST(TensorBoard, MaskedCrc32cMatchesTensorBoard) {
  // Values from tensorboard's own masked_crc32c (tensorflow_stub) on the same bytes.
  const std::string digits = "123456789";
  EXPECT_EQ(masked_crc32c(digits.data(), digits.size()), 0xC78AB0E5u);
  const std::string zeros(8, '\0');
  EXPECT_EQ(masked_crc32c(zeros.data(), zeros.size()), 0x07980329u);
}

TEST(TensorBoard, WritesScalarsAndReadsThemBack) {
  TempDir dir;
  std::string path;
  {
    TensorBoardWriter writer(dir.path() + "/logs");
    path = writer.path();
    writer.add_scalars(1, {{"train/loss", 2.5}, {"train/lr", 1e-4}});
    writer.add_scalars(10, {{"valid/loss", 0.0}, {"train/loss", 1.0 / 3.0}});
    writer.flush();
  }
  std::vector<tensorboard::Event> events = read_event_file(path);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].what_case(), tensorboard::Event::kFileVersion);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  for (const tensorboard::Event& event : events) EXPECT_GT(event.wall_time(), 0.0);

  ASSERT_EQ(events[1].what_case(), tensorboard::Event::kSummary);
  EXPECT_EQ(events[1].step(), 1);
  const tensorboard::Summary& first = events[1].summary();
  ASSERT_EQ(first.value_size(), 2);
  EXPECT_EQ(first.value(0).tag(), "train/loss");
  EXPECT_EQ(first.value(0).simple_value(), 2.5f);
  EXPECT_EQ(first.value(1).tag(), "train/lr");
  EXPECT_EQ(first.value(1).simple_value(), static_cast<float>(1e-4));

  ASSERT_EQ(events[2].what_case(), tensorboard::Event::kSummary);
  EXPECT_EQ(events[2].step(), 10);
  const tensorboard::Summary& second = events[2].summary();
  ASSERT_EQ(second.value_size(), 2);
  EXPECT_EQ(second.value(0).tag(), "valid/loss");
  // A zero is still present on the wire: TensorBoard skips a Value with no simple_value set.
  EXPECT_TRUE(second.value(0).has_simple_value());
  EXPECT_EQ(second.value(0).simple_value(), 0.0f);
  EXPECT_EQ(second.value(1).simple_value(), static_cast<float>(1.0 / 3.0));
}

TEST(TensorBoard, FileNameFollowsTheTfeventsPattern) {
  TempDir dir;
  TensorBoardWriter writer(dir.path());
  fs::path path(writer.path());
  EXPECT_EQ(path.parent_path(), fs::path(dir.path()));
  std::string name = path.filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_NE(name.find(fmt::format(".{}", getpid())), std::string::npos) << name;
  EXPECT_TRUE(fs::is_regular_file(path));
  // A second writer in the same directory and process gets its own file.
  TensorBoardWriter other(dir.path());
  EXPECT_NE(other.path(), writer.path());
  EXPECT_NE(other.path().find("tfevents"), std::string::npos);
}

TEST(TensorBoard, CorruptedDataNamesFileAndRecordOffset) {
  TempDir dir;
  std::string path;
  {
    TensorBoardWriter writer(dir.path());
    path = writer.path();
    writer.add_scalars(5, {{"train/loss", 1.25}});
  }
  const std::string good = read_bytes(path);
  size_t second_record = record_size(good, 0);
  ASSERT_EQ(second_record + record_size(good, second_record), good.size());

  std::string bad = good;
  bad[second_record + 12 + 3] ^= 0x01;  // a data byte of the second record
  write_bytes(path, bad);
  std::string message = error_message([&] { read_event_file(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find(fmt::format("byte offset {}", second_record)), std::string::npos)
      << message;
  EXPECT_NE(message.find("data CRC"), std::string::npos) << message;

  bad = good;
  bad[2] ^= 0x40;  // a length byte of the first record
  write_bytes(path, bad);
  message = error_message([&] { read_event_file(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("byte offset 0"), std::string::npos) << message;
  EXPECT_NE(message.find("length CRC"), std::string::npos) << message;

  write_bytes(path, good.substr(0, good.size() - 1));
  message = error_message([&] { read_event_file(path); });
  EXPECT_NE(message.find(fmt::format("byte offset {}", second_record)), std::string::npos)
      << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;

  write_bytes(path, good);
  EXPECT_EQ(read_event_file(path).size(), 2u);
}

TEST(TensorBoard, UncreatableDirectoryNamesThePath) {
  TempDir dir;
  std::string file = dir.path() + "/not_a_directory";
  write_bytes(file, "x");
  std::string logdir = file + "/tensorboard";
  std::string message = error_message([&] { TensorBoardWriter writer(logdir); });
  EXPECT_NE(message.find(logdir), std::string::npos) << message;

  std::string missing = dir.path() + "/missing.tfevents";
  message = error_message([&] { read_event_file(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
}

// The output of `script` run by $FT_PYTHON (default python3) with `arg`; fails the test with the
// command's output when it exits non-zero.
std::string run_python(const TempDir& dir, const std::string& script, const std::string& arg) {
  const std::string script_path = dir.path() + "/reader.py";
  write_bytes(script_path, script);
  const ft::testing::CommandResult run = ft::testing::run_python(script_path, "'" + arg + "'");
  if (run.status != 0) throw std::runtime_error(ft::testing::python_failure(script_path, run));
  return run.output;
}

// The scalars of every event file under argv[1], as JSON {tag: [[step, value], ...]}, read by
// TensorBoard's own EventAccumulator.
constexpr const char* kReadScalars = R"(
import json, sys
from tensorboard.backend.event_processing import event_accumulator
accumulator = event_accumulator.EventAccumulator(sys.argv[1])
accumulator.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in accumulator.Scalars(tag)]
                  for tag in accumulator.Tags()["scalars"]}))
)";

TEST(TensorBoard, MetricsLogIsReadByTheTensorBoardPackage) {
  TempDir dir;
  {
    MetricsLog metrics(dir.path(), /*resume_step=*/0);
    StepMetrics step;
    step.step = 1;
    step.loss = 2.5;
    step.accuracy = 0.25;
    step.lr = 0.5;
    step.grad_norm = 1.25;
    step.trained_tokens = 30;
    EvalMetrics eval{1, 2.75, 0.125, 40};
    metrics.log_step(step, eval);
    metrics.log_eval(eval);
    step.step = 2;
    step.loss = 2.0;
    step.lr = 0.25;
    step.grad_norm = 0.75;
    step.trained_tokens = 70;
    metrics.log_step(step, std::nullopt);
    metrics.log_full_eval(EvalMetrics{2, 1.5, 0.5, 400});
  }
  // metrics.jsonl: OpenAI's metric names on the step and evaluation lines; the full evaluation's
  // own line.
  std::ifstream jsonl(dir.path() + "/metrics.jsonl");
  std::string line, last;
  std::vector<nlohmann::json> lines;
  while (std::getline(jsonl, line)) lines.push_back(nlohmann::json::parse(last = line));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["train_loss"], 2.5);
  EXPECT_EQ(lines[0]["train_mean_token_accuracy"], 0.25);
  EXPECT_EQ(lines[0]["trained_tokens"], 30);
  EXPECT_EQ(lines[1]["valid_loss"], 2.75);
  EXPECT_EQ(lines[1]["valid_mean_token_accuracy"], 0.125);
  EXPECT_EQ(lines[1]["valid_tokens"], 40);
  EXPECT_EQ(lines[2]["train_loss"], 2.0);
  EXPECT_EQ(lines[2]["trained_tokens"], 70);
  const nlohmann::json full = nlohmann::json::parse(last);
  EXPECT_EQ(full["step"], 2);
  EXPECT_EQ(full["full_valid_loss"], 1.5);
  EXPECT_EQ(full["full_valid_mean_token_accuracy"], 0.5);
  EXPECT_EQ(full["full_valid_tokens"], 400);
  // results.csv: OpenAI's results-file columns and trained_tokens; the full evaluation is not a
  // step row.
  std::ifstream csv(dir.path() + "/results.csv");
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0],
            "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,"
            "trained_tokens");
  EXPECT_EQ(rows[1], "1,2.5,0.25,2.75,0.125,30");
  EXPECT_EQ(rows[2], "2,2,0.25,,,70");

  nlohmann::json scalars;
  try {
    scalars = nlohmann::json::parse(run_python(dir, kReadScalars, dir.path()));
  } catch (const std::exception& error) {
    FAIL() << error.what();
  }
  using Points = std::vector<std::pair<int64_t, double>>;
  auto points = [&](const std::string& tag) {
    Points result;
    if (!scalars.contains(tag)) return result;
    for (const auto& point : scalars[tag]) result.emplace_back(point[0], point[1]);
    return result;
  };
  EXPECT_EQ(points("train/loss"), (Points{{1, 2.5}, {2, 2.0}})) << scalars.dump();
  EXPECT_EQ(points("train/mean_token_accuracy"), (Points{{1, 0.25}, {2, 0.25}}));
  EXPECT_EQ(points("train/lr"), (Points{{1, 0.5}, {2, 0.25}}));
  EXPECT_EQ(points("train/grad_norm"), (Points{{1, 1.25}, {2, 0.75}}));
  EXPECT_EQ(points("train/trained_tokens"), (Points{{1, 30.0}, {2, 70.0}}));
  EXPECT_EQ(points("valid/loss"), (Points{{1, 2.75}}));
  EXPECT_EQ(points("valid/mean_token_accuracy"), (Points{{1, 0.125}}));
  EXPECT_EQ(points("valid/full_loss"), (Points{{2, 1.5}}));
  EXPECT_EQ(points("valid/full_mean_token_accuracy"), (Points{{2, 0.5}}));
}

}  // namespace
}  // namespace ft
