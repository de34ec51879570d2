#include "runtime/checkpoint/hdf5_checkpoint.h"

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <system_error>
#include <type_traits>

#include "runtime/checkpoint/durable_file.h"
#include "runtime/checkpoint/float_convert.h"
#include "runtime/checkpoint/hdf5_handle.h"

namespace ft::checkpoint {

using detail::check_status;
using detail::checked_handle;
using detail::fail_hdf5;
using detail::Handle;
using detail::ObjectKind;

namespace {

// The dataset attribute that marks uint16 data as bf16 (HDF5 1.10 has no bf16 type).
constexpr const char* kDTypeAttribute = "dtype";

struct StorageTypes {
  hid_t file_type;    // how the file stores it
  hid_t memory_type;  // how ft holds it in memory
};

StorageTypes storage_types(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return {H5T_IEEE_F32LE, H5T_NATIVE_FLOAT};
    case DType::f64:
      return {H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE};
    case DType::bf16:
      return {H5T_STD_U16LE, H5T_NATIVE_UINT16};
    case DType::i32:
      return {H5T_STD_I32LE, H5T_NATIVE_INT32};
    case DType::i8:
    case DType::f8e4m3:
      fail(
          "checkpoint: tensors of dtype {} (quantized weights) cannot be stored in an ft "
          "checkpoint; store the weights they were quantized from",
          dtype_name(dtype));
  }
  fail("checkpoint: unknown dtype {}", static_cast<int>(dtype));
}

// Tensor names are relative paths "group/.../name" without empty, "." or ".." components.
void check_tensor_name(const std::string& file, const std::string& name) {
  bool valid = !name.empty();
  size_t begin = 0;
  while (valid) {
    size_t slash = name.find('/', begin);
    size_t end = slash == std::string::npos ? name.size() : slash;
    std::string_view component(name.data() + begin, end - begin);
    valid = !component.empty() && component != "." && component != "..";
    if (slash == std::string::npos) break;
    begin = slash + 1;
  }
  if (!valid)
    fail(
        "checkpoint {}: invalid tensor name '{}' (expected a relative path like "
        "'model/model.embed_tokens.weight' with no empty, '.' or '..' parts)",
        file, name);
}

Handle make_dataspace(const Shape& shape, const std::string& file, const std::string& name) {
  if (shape.rank == 0)
    return checked_handle(H5Screate(H5S_SCALAR), H5Sclose, file, "H5Screate", name);
  hsize_t dims[kMaxRank];
  for (int axis = 0; axis < shape.rank; ++axis) {
    if (shape.dims[axis] < 0)
      fail("checkpoint {}: tensor '{}' has shape {}", file, name, shape.str());
    dims[axis] = static_cast<hsize_t>(shape.dims[axis]);
  }
  return checked_handle(H5Screate_simple(shape.rank, dims, nullptr), H5Sclose, file,
                        "H5Screate_simple", name);
}

// Float conversion between f32, f64 and bf16 (f64 -> bf16 rounds through f32).
void convert_floats(const Tensor& source, const Tensor& destination) {
  bool converted = false;
  bool source_is_float = detail::visit_float_data(source, [&](const auto* from) {
    converted = detail::visit_float_data(destination, [&](auto* to) {
      using Destination = std::remove_pointer_t<decltype(to)>;
      for (int64_t i = 0; i < destination.numel(); ++i)
        to[i] = detail::convert_float<Destination>(from[i]);
    });
  });
  if (!source_is_float)
    fail("checkpoint: cannot convert {} as floating-point data", dtype_name(source.dtype));
  if (!converted)
    fail("checkpoint: cannot convert floating-point data into {}", dtype_name(destination.dtype));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CheckpointWriter

struct CheckpointWriter::Impl {
  // Declared first so that it is destroyed last: an uncommitted tmp is deleted after the handles
  // below have closed it, on destruction and on move-assignment alike.
  detail::DurableFile output;
  Handle file;             // open until commit()
  Handle link_properties;  // creates missing intermediate groups

  explicit Impl(std::string final_path) : output("checkpoint", std::move(final_path)) {}

  void require_open(const char* call) const {
    if (!file.valid())
      fail("checkpoint {}: {} on a writer that was already committed (or failed to commit)",
           output.final_path(), call);
  }

  void require_new_attribute(const std::string& name) const {
    require_open("set_attribute");
    if (name.empty()) fail("checkpoint {}: empty attribute name", output.final_path());
    htri_t exists = H5Aexists(file.get(), name.c_str());
    if (exists < 0) fail_hdf5(output.tmp_path(), "H5Aexists", name);
    if (exists > 0) fail("checkpoint {}: attribute '{}' set twice", output.final_path(), name);
  }

  void write_scalar_attribute(const std::string& name, hid_t file_type, hid_t memory_type,
                              const void* value) {
    require_new_attribute(name);
    Handle space =
        checked_handle(H5Screate(H5S_SCALAR), H5Sclose, output.tmp_path(), "H5Screate", name);
    Handle attribute = checked_handle(
        H5Acreate2(file.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
        H5Aclose, output.tmp_path(), "H5Acreate2", name);
    check_status(H5Awrite(attribute.get(), memory_type, value), output.tmp_path(), "H5Awrite",
                 name);
  }
};

CheckpointWriter::CheckpointWriter(std::string final_path) {
  detail::silence_hdf5_errors();
  if (final_path.empty()) fail("CheckpointWriter: empty checkpoint path");
  impl_ = std::make_unique<Impl>(std::move(final_path));
  Impl& writer = *impl_;
  const std::string& tmp_path = writer.output.tmp_path();
  writer.file = checked_handle(H5Fcreate(tmp_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                               H5Fclose, tmp_path, "H5Fcreate", "");
  writer.output.tmp_created();
  writer.link_properties = checked_handle(H5Pcreate(H5P_LINK_CREATE), H5Pclose, tmp_path,
                                          "H5Pcreate", "link creation properties");
  check_status(H5Pset_create_intermediate_group(writer.link_properties.get(), 1), tmp_path,
               "H5Pset_create_intermediate_group", "");
}

CheckpointWriter::~CheckpointWriter() = default;
CheckpointWriter::CheckpointWriter(CheckpointWriter&&) noexcept = default;
CheckpointWriter& CheckpointWriter::operator=(CheckpointWriter&&) noexcept = default;

CheckpointWriter::Impl& CheckpointWriter::writer(const char* call) {
  if (!impl_) fail("checkpoint: {} on a moved-from CheckpointWriter", call);
  return *impl_;
}

void CheckpointWriter::write_tensor(const std::string& name, const Tensor& tensor) {
  Impl& writer = this->writer("write_tensor");
  writer.require_open("write_tensor");
  const std::string& final_path = writer.output.final_path();
  const std::string& tmp_path = writer.output.tmp_path();
  check_tensor_name(final_path, name);
  if (tensor.device != Device::cpu)
    fail("checkpoint {}: tensor '{}' is {}; write_tensor takes CPU tensors", final_path, name,
         tensor.describe());
  if (tensor.data == nullptr && tensor.numel() != 0)
    fail("checkpoint {}: tensor '{}' ({}) has no data", final_path, name, tensor.describe());

  ObjectKind existing = detail::object_kind(writer.file.get(), tmp_path, name);
  if (existing == ObjectKind::dataset)
    fail("checkpoint {}: tensor '{}' written twice", final_path, name);
  if (existing != ObjectKind::missing)
    fail("checkpoint {}: cannot write tensor '{}': a group of that name exists", final_path, name);

  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    std::string parent = name.substr(0, slash);
    if (detail::object_kind(writer.file.get(), tmp_path, parent) == ObjectKind::dataset)
      fail("checkpoint {}: cannot write tensor '{}': '{}' is a tensor, not a group", final_path,
           name, parent);
  }

  StorageTypes types = storage_types(tensor.dtype);
  Handle space = make_dataspace(tensor.shape, final_path, name);
  // Contiguous layout (the default) and one H5Dwrite: no chunking or filters for serial files.
  Handle dataset =
      checked_handle(H5Dcreate2(writer.file.get(), name.c_str(), types.file_type, space.get(),
                                writer.link_properties.get(), H5P_DEFAULT, H5P_DEFAULT),
                     H5Dclose, tmp_path, "H5Dcreate2", name);
  if (tensor.numel() != 0) {
    check_status(
        H5Dwrite(dataset.get(), types.memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.data),
        tmp_path, "H5Dwrite", name);
  }
  if (tensor.dtype == DType::bf16)
    detail::write_string_attribute(dataset.get(), tmp_path, kDTypeAttribute, "bf16");
}

void CheckpointWriter::set_attribute(const std::string& name, const std::string& value) {
  Impl& writer = this->writer("set_attribute");
  writer.require_new_attribute(name);
  detail::write_string_attribute(writer.file.get(), writer.output.tmp_path(), name, value);
}

void CheckpointWriter::set_attribute(const std::string& name, int64_t value) {
  writer("set_attribute").write_scalar_attribute(name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void CheckpointWriter::set_attribute(const std::string& name, double value) {
  writer("set_attribute").write_scalar_attribute(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void CheckpointWriter::commit() {
  Impl& writer = this->writer("commit");
  writer.require_open("commit");
  const std::string& tmp_path = writer.output.tmp_path();
  check_status(H5Fflush(writer.file.get(), H5F_SCOPE_GLOBAL), tmp_path, "H5Fflush", "");
  writer.link_properties.reset();
  // Every dataset and attribute handle is already closed, so this really closes the file.
  check_status(writer.file.close(), tmp_path, "H5Fclose", "");
  writer.output.sync_tmp();
  writer.output.commit();
}

// ---------------------------------------------------------------------------------------------
// CheckpointReader

struct CheckpointReader::Impl {
  std::string path;
  Handle file;

  Handle open_dataset(const std::string& name) const {
    ObjectKind kind = detail::object_kind(file.get(), path, name);
    if (kind == ObjectKind::missing) fail("checkpoint {}: no tensor '{}'", path, name);
    if (kind != ObjectKind::dataset)
      fail("checkpoint {}: '{}' is a {}, not a tensor", path, name,
           kind == ObjectKind::group ? "group" : "named type or other object");
    return checked_handle(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, path,
                          "H5Dopen2", name);
  }

  Shape dataset_shape(hid_t dataset, const std::string& name) const {
    Handle space = checked_handle(H5Dget_space(dataset), H5Sclose, path, "H5Dget_space", name);
    if (H5Sget_simple_extent_type(space.get()) == H5S_NULL)
      fail("checkpoint {}: tensor '{}' has a null dataspace (no shape)", path, name);
    int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) fail_hdf5(path, "H5Sget_simple_extent_ndims", name);
    if (rank > kMaxRank)
      fail("checkpoint {}: tensor '{}' has rank {}, ft tensors have at most {} dimensions", path,
           name, rank, kMaxRank);
    hsize_t dims[H5S_MAX_RANK];
    if (H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0)
      fail_hdf5(path, "H5Sget_simple_extent_dims", name);
    Shape shape;
    shape.rank = rank;
    for (int axis = 0; axis < rank; ++axis) shape.dims[axis] = static_cast<int64_t>(dims[axis]);
    return shape;
  }

  DType dataset_dtype(hid_t dataset, const std::string& name) const {
    Handle type = checked_handle(H5Dget_type(dataset), H5Tclose, path, "H5Dget_type", name);
    H5T_class_t type_class = H5Tget_class(type.get());
    size_t size = H5Tget_size(type.get());
    if (type_class == H5T_FLOAT && size == 4) return DType::f32;
    if (type_class == H5T_FLOAT && size == 8) return DType::f64;
    if (type_class == H5T_INTEGER) {
      H5T_sign_t sign = H5Tget_sign(type.get());
      if (size == 4 && sign == H5T_SGN_2) return DType::i32;
      if (size == 2 && sign == H5T_SGN_NONE) {
        htri_t tagged = H5Aexists(dataset, kDTypeAttribute);
        if (tagged < 0) fail_hdf5(path, "H5Aexists", name);
        if (tagged > 0 && detail::read_string_attribute(dataset, path, "tensor '" + name + "'",
                                                        kDTypeAttribute) == "bf16")
          return DType::bf16;
        fail(
            "checkpoint {}: tensor '{}' is uint16 without the attribute dtype=\"bf16\" (ft "
            "reads uint16 only as bf16)",
            path, name);
      }
    }
    fail(
        "checkpoint {}: tensor '{}' holds {}, expected f32, f64, i32, or uint16 tagged "
        "dtype=\"bf16\"",
        path, name, detail::describe_type(type.get()));
  }

  void read_raw(hid_t dataset, DType stored, void* destination, const std::string& name) const {
    check_status(H5Dread(dataset, storage_types(stored).memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         destination),
                 path, "H5Dread", name);
  }

  // Opens a root attribute after checking that it exists and holds one value of `expected`.
  Handle open_root_attribute(const std::string& name, H5T_class_t expected,
                             const char* expected_name) const {
    htri_t exists = H5Aexists(file.get(), name.c_str());
    if (exists < 0) fail_hdf5(path, "H5Aexists", name);
    if (exists == 0) fail("checkpoint {}: no attribute '{}'", path, name);
    Handle attribute = checked_handle(H5Aopen(file.get(), name.c_str(), H5P_DEFAULT), H5Aclose,
                                      path, "H5Aopen", name);
    Handle type = checked_handle(H5Aget_type(attribute.get()), H5Tclose, path, "H5Aget_type", name);
    if (H5Tget_class(type.get()) != expected)
      fail("checkpoint {}: attribute '{}' holds {}, expected {}", path, name,
           detail::describe_type(type.get()), expected_name);
    Handle space =
        checked_handle(H5Aget_space(attribute.get()), H5Sclose, path, "H5Aget_space", name);
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
      fail("checkpoint {}: attribute '{}' holds several values, expected one {}", path, name,
           expected_name);
    return attribute;
  }
};

CheckpointReader::CheckpointReader(std::string path) : impl_(std::make_unique<Impl>()) {
  detail::silence_hdf5_errors();
  impl_->path = std::move(path);
  const std::string& file = impl_->path;
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(file, error);
  if (!std::filesystem::exists(status)) fail("checkpoint {}: no such file", file);
  if (std::filesystem::is_directory(status))
    fail("checkpoint {}: is a directory, not a checkpoint file", file);
  htri_t is_hdf5 = H5Fis_hdf5(file.c_str());
  if (is_hdf5 < 0) fail_hdf5(file, "H5Fis_hdf5", "");
  if (is_hdf5 == 0) fail("checkpoint {}: not an HDF5 file", file);
  impl_->file = checked_handle(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, file,
                               "H5Fopen", "");
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;

const CheckpointReader::Impl& CheckpointReader::reader() const {
  if (!impl_) fail("checkpoint: use of a moved-from CheckpointReader");
  return *impl_;
}

const std::string& CheckpointReader::path() const {
  return reader().path;
}

bool CheckpointReader::has_tensor(const std::string& name) const {
  const Impl& reader = this->reader();
  return detail::object_kind(reader.file.get(), reader.path, name) == ObjectKind::dataset;
}

Shape CheckpointReader::tensor_shape(const std::string& name) const {
  const Impl& reader = this->reader();
  Handle dataset = reader.open_dataset(name);
  return reader.dataset_shape(dataset.get(), name);
}

std::string CheckpointReader::tensor_dtype(const std::string& name) const {
  const Impl& reader = this->reader();
  Handle dataset = reader.open_dataset(name);
  return dtype_name(reader.dataset_dtype(dataset.get(), name));
}

namespace {

struct DatasetListing {
  std::vector<std::string> names;
};

herr_t list_dataset(hid_t group, const char* name, const H5L_info_t*, void* out) {
  H5O_info_t info;
  // Follows soft links; a dangling one is not a tensor.
  if (H5Oget_info_by_name2(group, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  try {
    if (info.type == H5O_TYPE_DATASET) static_cast<DatasetListing*>(out)->names.emplace_back(name);
  } catch (...) {
    return -1;  // never let an exception cross HDF5's C frames
  }
  return 0;
}

}  // namespace

std::vector<std::string> CheckpointReader::tensor_names(const std::string& group) const {
  const Impl& reader = this->reader();
  // "", "/" and "model/" name the root and "model": trim the slashes around the path.
  size_t first = group.find_first_not_of('/');
  std::string location = first == std::string::npos
                             ? "/"
                             : group.substr(first, group.find_last_not_of('/') + 1 - first);
  if (location != "/") {
    ObjectKind kind = detail::object_kind(reader.file.get(), reader.path, location);
    if (kind == ObjectKind::missing) return {};
    if (kind != ObjectKind::group)
      fail("checkpoint {}: '{}' is not a group, cannot list tensors under it", reader.path, group);
  }
  Handle opened = checked_handle(H5Gopen2(reader.file.get(), location.c_str(), H5P_DEFAULT),
                                 H5Gclose, reader.path, "H5Gopen2", location);
  DatasetListing listing;
  if (H5Literate(opened.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, list_dataset, &listing) < 0)
    fail_hdf5(reader.path, "H5Literate", location);
  std::sort(listing.names.begin(), listing.names.end());
  return listing.names;
}

void CheckpointReader::read_tensor(const std::string& name, const Tensor& dst) const {
  const Impl& reader = this->reader();
  if (dst.device != Device::cpu)
    fail("checkpoint {}: read_tensor('{}') needs a CPU destination, got {}", reader.path, name,
         dst.describe());
  Handle dataset = reader.open_dataset(name);
  Shape stored_shape = reader.dataset_shape(dataset.get(), name);
  if (!(stored_shape == dst.shape))
    fail("checkpoint {}: tensor '{}' has shape {}, expected {}", reader.path, name,
         stored_shape.str(), dst.shape.str());
  DType stored = reader.dataset_dtype(dataset.get(), name);
  if ((stored == DType::i32) != (dst.dtype == DType::i32))
    fail("checkpoint {}: tensor '{}' is {}, cannot read it into {}", reader.path, name,
         dtype_name(stored), dtype_name(dst.dtype));
  if (dst.numel() == 0) return;
  if (dst.data == nullptr)
    fail("checkpoint {}: read_tensor('{}') into a tensor with no data", reader.path, name);

  if (stored == dst.dtype) {
    reader.read_raw(dataset.get(), stored, dst.data, name);  // no conversion: bit-exact
    return;
  }
  std::unique_ptr<std::byte[]> staging(
      new std::byte[static_cast<size_t>(dst.numel()) * dtype_size(stored)]);
  reader.read_raw(dataset.get(), stored, staging.get(), name);
  convert_floats(Tensor(staging.get(), stored, stored_shape), dst);
}

bool CheckpointReader::has_attribute(const std::string& name) const {
  const Impl& reader = this->reader();
  if (name.empty()) return false;
  htri_t exists = H5Aexists(reader.file.get(), name.c_str());
  if (exists < 0) fail_hdf5(reader.path, "H5Aexists", name);
  return exists > 0;
}

std::string CheckpointReader::string_attribute(const std::string& name) const {
  const Impl& reader = this->reader();
  reader.open_root_attribute(name, H5T_STRING, "a string");
  return detail::read_string_attribute(reader.file.get(), reader.path, "the root group", name);
}

int64_t CheckpointReader::int_attribute(const std::string& name) const {
  const Impl& reader = this->reader();
  Handle attribute = reader.open_root_attribute(name, H5T_INTEGER, "an integer");
  int64_t value = 0;
  check_status(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), reader.path, "H5Aread", name);
  return value;
}

double CheckpointReader::double_attribute(const std::string& name) const {
  const Impl& reader = this->reader();
  Handle attribute = reader.open_root_attribute(name, H5T_FLOAT, "a float");
  double value = 0;
  check_status(H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, &value), reader.path, "H5Aread", name);
  return value;
}

}  // namespace ft::checkpoint
