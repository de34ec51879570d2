#include "runtime/checkpoint/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "runtime/error.h"

namespace ft::checkpoint::detail {

DurableFile::DurableFile(std::string kind, std::string final_path)
    : kind_(std::move(kind)), final_path_(std::move(final_path)), tmp_path_(final_path_ + ".tmp") {
  std::filesystem::path parent = std::filesystem::path(final_path_).parent_path();
  if (parent.empty()) return;
  std::error_code error;
  std::filesystem::create_directories(parent, error);
  if (error)
    fail("{} {}: cannot create directory {}: {}", kind_, final_path_, parent.string(),
         error.message());
}

DurableFile::~DurableFile() {
  if (committed_ || !created_tmp_) return;
  std::error_code ignored;
  std::filesystem::remove(tmp_path_, ignored);
}

void DurableFile::fsync_path(const std::string& path, bool is_directory) const {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (is_directory ? O_DIRECTORY : 0));
  if (fd < 0)
    fail("{} {}: cannot open {} to fsync it: {}", kind_, final_path_, path, std::strerror(errno));
  int status = ::fsync(fd);
  int saved_errno = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL); the rename itself has still happened.
  if (status != 0 && !(is_directory && saved_errno == EINVAL))
    fail("{} {}: fsync of {} failed: {}", kind_, final_path_, path, std::strerror(saved_errno));
}

void DurableFile::sync_tmp() const {
  fsync_path(tmp_path_, false);
}

void DurableFile::commit() {
  if (std::rename(tmp_path_.c_str(), final_path_.c_str()) != 0)
    fail("{} {}: rename from {} failed: {}", kind_, final_path_, tmp_path_, std::strerror(errno));
  committed_ = true;
  std::filesystem::path parent = std::filesystem::path(final_path_).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), true);
}

}  // namespace ft::checkpoint::detail
