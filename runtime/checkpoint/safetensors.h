// safetensors files (Hugging Face checkpoints and PEFT adapters), one file at a time.
//
// Format: 8 bytes little-endian u64 N, then N bytes of JSON (padded with spaces), then the data
// section. The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}
// (byte offsets into the data section); the optional "__metadata__" maps strings to strings.
//
// The reader parses and validates only the header (the data stays on disk and is read with pread
// per tensor), so opening a multi-GB shard costs one small read. The writer produces the same
// bytes as the Python `safetensors` library for the same tensors and at most one metadata key
// (the library orders several keys by hash): tensors sorted by dtype (widest first, the library's
// alignment order) then name, header padded with spaces to a multiple of 8.
//
// Crash safety as for HDF5 checkpoints: the writer fills `<path>.tmp`, commit() renames it over
// `<path>`, and an uncommitted writer deletes its tmp and never touches `<path>`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace ft::checkpoint {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as in the file: "F32", "F64", "BF16", "F16", "I64", "I32", "U8", ...
  std::vector<int64_t> dims;  // the stored shape, any rank ({} is a scalar)
  int64_t numel = 0;
  uint64_t begin = 0;  // byte range [begin, end) in the data section
  uint64_t end = 0;
};

class SafetensorsReader {
 public:
  // Opens the file and reads and validates its header: 8-byte length within the file and at most
  // 100 MB, a JSON object, known dtypes, non-negative shapes, dtype size * numel == end - begin,
  // ranges that tile the data section exactly (no overlap, gap or trailing byte), no duplicate
  // name, "__metadata__" string -> string. Errors name the file and, where one is involved, the
  // tensor.
  explicit SafetensorsReader(std::string path);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&&) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept;
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // error names tensor and file
  // The stored shape as an ft Shape; an error for a rank above kMaxRank.
  Shape shape(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;
  // File offset of the data section (8 + header length): entry.begin + this is the file offset.
  uint64_t data_section_offset() const;

  // Reads tensor `name` into the CPU tensor dst, whose shape must equal the stored one. Float data
  // (F32, F64, BF16, F16) goes into f32, f64 or bf16 (rounding to nearest even; F64 -> bf16
  // rounds through f32); integer data (I8..I64, U8..U64, BOOL) into i32, failing on a value out
  // of range. Safe to call from several threads at once.
  void read(const std::string& name, const Tensor& dst) const;

 private:
  struct Impl;
  const Impl& reader() const;  // the state, or an error for a moved-from reader
  std::unique_ptr<Impl> impl_;
};

class SafetensorsWriter {
 public:
  // Creates `final_path + ".tmp"` (and missing parent directories); final_path is untouched until
  // commit().
  explicit SafetensorsWriter(std::string final_path);
  // If not committed: deletes the tmp file (never the final file).
  ~SafetensorsWriter();
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;  // drops (and cleans up) the old one
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Copies a CPU tensor (it may be freed afterwards): f32 -> F32, f64 -> F64, bf16 -> BF16,
  // i32 -> I32. An empty name, "__metadata__" or a name added twice is an error.
  void add(const std::string& name, const Tensor& tensor);
  // Copies elements already in their stored encoding (little-endian), for dtypes ft tensors lack
  // (F16): `dtype` as in the file, numel(dims) * element size bytes from `data`.
  void add_encoded(const std::string& name, const std::string& dtype,
                   const std::vector<int64_t>& dims, const void* data);
  // A "__metadata__" entry; setting the same key twice is an error.
  void set_metadata(const std::string& key, const std::string& value);
  // Writes header and data to the tmp file, fsyncs it, renames it over final_path (atomic
  // replace) and fsyncs the directory. The writer accepts nothing after this.
  void commit();

 private:
  struct Impl;
  Impl& writer(const char* call);  // the state, or an error for a moved-from writer
  std::unique_ptr<Impl> impl_;
};

}  // namespace ft::checkpoint
