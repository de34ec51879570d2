#include "runtime/checkpoint/checkpoint_dir.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include "runtime/error.h"

namespace ft::checkpoint {

namespace fs = std::filesystem;

namespace {

// The step of a file named step_<digits>.h5, or nullopt for any other name (step_*.h5.tmp too).
std::optional<int64_t> parse_step_file_name(const std::string& name) {
  const std::string prefix = "step_";
  const std::string suffix = ".h5";
  if (name.size() <= prefix.size() + suffix.size()) return std::nullopt;
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return std::nullopt;
  std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18) return std::nullopt;  // would overflow int64
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

struct StepFile {
  int64_t step;
  fs::path path;
};

// The step checkpoints in dir, oldest first (ties, e.g. step_9.h5 and step_00000009.h5, by name).
std::vector<StepFile> list_step_files(const std::string& dir) {
  std::vector<StepFile> files;
  std::error_code error;
  fs::file_status status = fs::status(dir, error);
  if (!fs::exists(status)) return files;
  if (!fs::is_directory(status)) fail("checkpoint directory {}: not a directory", dir);
  fs::directory_iterator entries(dir, error);
  if (error) fail("checkpoint directory {}: cannot list it: {}", dir, error.message());
  for (const fs::directory_entry& entry : entries) {
    std::error_code entry_error;
    if (!entry.is_regular_file(entry_error)) continue;
    std::optional<int64_t> step = parse_step_file_name(entry.path().filename().string());
    if (step) files.push_back({*step, entry.path()});
  }
  std::sort(files.begin(), files.end(), [](const StepFile& a, const StepFile& b) {
    return a.step != b.step ? a.step < b.step : a.path.filename() < b.path.filename();
  });
  return files;
}

}  // namespace

std::string step_checkpoint_path(const std::string& dir, int64_t step) {
  if (step < 0) fail("step_checkpoint_path: step must be >= 0, got {}", step);
  return (fs::path(dir) / fmt::format("step_{:08d}.h5", step)).string();
}

std::optional<std::string> latest_checkpoint(const std::string& dir) {
  std::vector<StepFile> files = list_step_files(dir);
  if (files.empty()) return std::nullopt;
  return files.back().path.string();
}

std::optional<int64_t> checkpoint_step(const std::string& path) {
  return parse_step_file_name(fs::path(path).filename().string());
}

void remove_old_checkpoints(const std::string& dir, int keep_last) {
  if (keep_last < 1)
    fail("remove_old_checkpoints {}: keep_last must be >= 1, got {}", dir, keep_last);
  std::vector<StepFile> files = list_step_files(dir);
  if (files.size() <= static_cast<size_t>(keep_last)) return;
  size_t remove_count = files.size() - static_cast<size_t>(keep_last);
  for (size_t i = 0; i < remove_count; ++i) {
    std::error_code error;
    fs::remove(files[i].path, error);
    if (error)
      fail("checkpoint directory {}: cannot delete {}: {}", dir, files[i].path.string(),
           error.message());
  }
}

}  // namespace ft::checkpoint
