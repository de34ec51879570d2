// HDF5 checkpoints (serial HDF5, one process writes the whole file).
//
// Layout: tensors are datasets named by path ("model/model.layers.0.self_attn.q_proj.weight",
// "optimizer/m/..."); '/' separates groups, dots belong to the dataset name. f32, f64 and i32 are
// stored natively (little-endian IEEE / two's complement); bf16, which HDF5 1.10 lacks, is stored
// as uint16 with the string attribute dtype="bf16" on the dataset. Run state lives in attributes on
// the root group: UTF-8 variable-length strings, int64 and double, all readable by h5py.
//
// Crash safety: a writer fills `<path>.tmp` and only commit() renames it over `<path>`, so a
// process killed mid-write leaves the previous checkpoint intact.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/checkpoint/checkpoint_dir.h"
#include "runtime/tensor.h"

namespace ft::checkpoint {

class CheckpointWriter {
 public:
  // Creates `final_path + ".tmp"` (overwriting a stale tmp) and the parent directory if missing.
  // Nothing at final_path is touched until commit().
  explicit CheckpointWriter(std::string final_path);
  // If not committed: closes and deletes the tmp file (never the final file).
  ~CheckpointWriter();
  CheckpointWriter(CheckpointWriter&&) noexcept;
  CheckpointWriter& operator=(CheckpointWriter&&) noexcept;  // drops (and cleans up) the old one
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes a CPU tensor as the dataset `name`, creating intermediate groups. Writing the same
  // name twice is an error.
  void write_tensor(const std::string& name, const Tensor& tensor);
  // Attributes on the root group. Setting the same name twice is an error.
  void set_attribute(const std::string& name, const std::string& value);
  void set_attribute(const std::string& name, int64_t value);
  void set_attribute(const std::string& name, double value);
  // Flushes, closes and fsyncs the file, renames tmp -> final_path (atomic replace), fsyncs the
  // directory. The writer accepts nothing after this.
  void commit();

 private:
  struct Impl;
  Impl& writer(const char* call);  // the state, or an error for a moved-from writer
  std::unique_ptr<Impl> impl_;
};

class CheckpointReader {
 public:
  // Opens read-only. A missing file or one that is not HDF5 -> ft::Error naming the path.
  explicit CheckpointReader(std::string path);
  ~CheckpointReader();
  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const std::string& path() const;

  bool has_tensor(const std::string& name) const;
  Shape tensor_shape(const std::string& name) const;        // error names the tensor if absent
  std::string tensor_dtype(const std::string& name) const;  // "f32" | "f64" | "bf16" | "i32"
  // Dataset names directly under `group` ("model" -> "model.layers.0.mlp.up_proj.weight", ...),
  // sorted; subgroups are not listed. "" or "/" is the root. An absent group lists nothing.
  std::vector<std::string> tensor_names(const std::string& group) const;
  // Reads into dst (CPU). The shape must equal the stored one. Converts between f32, f64 and bf16
  // as needed (rounding to nearest even); i32 reads only into i32.
  void read_tensor(const std::string& name, const Tensor& dst) const;

  bool has_attribute(const std::string& name) const;
  // Each names the attribute and the file when it is absent or holds another type.
  std::string string_attribute(const std::string& name) const;
  int64_t int_attribute(const std::string& name) const;
  double double_attribute(const std::string& name) const;

 private:
  struct Impl;
  const Impl& reader() const;  // the state, or an error for a moved-from reader
  std::unique_ptr<Impl> impl_;
};

}  // namespace ft::checkpoint
