// Internal to runtime/checkpoint: the crash-safe commit the checkpoint writers share (HDF5 and
// safetensors). A writer fills `<final_path>.tmp`; commit() renames it over final_path (atomic
// replace) and fsyncs the directory, so a process killed mid-write leaves the previous file
// intact and a committed file survives a power loss.
#pragma once

#include <string>

namespace ft::checkpoint::detail {

class DurableFile {
 public:
  // Creates the missing parent directories of final_path. Every error message starts with
  // "<kind> <final_path>:" (kind: "checkpoint", "safetensors").
  DurableFile(std::string kind, std::string final_path);
  // If the tmp file was created and not committed: deletes it (never final_path). A writer holds
  // this before its file handles, so they are closed before the tmp is deleted.
  ~DurableFile();
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;

  const std::string& final_path() const { return final_path_; }
  const std::string& tmp_path() const { return tmp_path_; }

  // The writer has created (or truncated) tmp_path: from now on it is this writer's to delete. A
  // writer that failed to create it must not delete a tmp some other writer owns.
  void tmp_created() { created_tmp_ = true; }
  // fsync(2) of the closed tmp file, so that its bytes reach the disk before the rename.
  void sync_tmp() const;
  // Renames the complete, closed tmp file over final_path, then fsyncs the directory so that the
  // rename reaches the disk.
  void commit();

 private:
  // fsync(2) on a file or directory; a directory that cannot be synced (EINVAL) is accepted.
  void fsync_path(const std::string& path, bool is_directory) const;

  std::string kind_;
  std::string final_path_;
  std::string tmp_path_;
  bool created_tmp_ = false;
  bool committed_ = false;
};

}  // namespace ft::checkpoint::detail
