// TensorBoard event files: the training loop's scalars (loss, learning rate, validation loss)
// written as TFRecord-framed Event protos that `tensorboard --logdir` reads directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "runtime/train/tensorboard_event.pb.h"

namespace ft {

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix seconds>.<hostname>.<pid> (creating dir) and writes
  // the first record, file_version "brain.Event:2". Errors name the path.
  explicit TensorBoardWriter(const std::string& dir);

  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  const std::string& path() const { return path_; }

  // One Event at `step` (wall_time = now) with a Summary of (tag, simple_value) pairs; values
  // are stored as float, as TensorBoard's simple_value is.
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);

  void flush();

 private:
  void write_event(const tensorboard::Event& event);

  std::string path_;
  std::ofstream out_;
};

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses.
uint32_t crc32c(const void* data, size_t size);
// TensorBoard's masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

// Reads an event file back, checking every record's framing and both CRCs (an error names the
// file and the record's byte offset); returns the parsed events in file order.
std::vector<tensorboard::Event> read_event_file(const std::string& path);

}  // namespace ft
