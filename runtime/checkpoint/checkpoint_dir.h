// Checkpoint directories: one file per saved step, <dir>/step_<8-digit step>.h5. A file still being
// written is <name>.tmp (see CheckpointWriter) and never counts as a checkpoint here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ft::checkpoint {

// "<dir>/step_00000042.h5". Steps past 8 digits get more digits.
std::string step_checkpoint_path(const std::string& dir, int64_t step);

// The newest complete checkpoint in dir (highest step number, compared as numbers; *.tmp and
// other names are ignored), or nullopt when there is none or dir does not exist.
std::optional<std::string> latest_checkpoint(const std::string& dir);

// The step a checkpoint's file name records (step_00000400.h5 -> 400), read from the name alone
// so that a damaged file can still be ordered; nullopt for other names.
std::optional<int64_t> checkpoint_step(const std::string& path);

// Deletes all but the newest keep_last (>= 1) step checkpoints in dir. Never touches *.tmp files
// or anything not named step_<digits>.h5.
void remove_old_checkpoints(const std::string& dir, int keep_last);

}  // namespace ft::checkpoint
