#include "runtime/checkpoint/hdf5_handle.h"

#include "runtime/error.h"

namespace ft::checkpoint::detail {

void silence_hdf5_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {

herr_t keep_innermost_message(unsigned depth, const H5E_error2_t* error, void* out) {
  // Walked upward, depth 0 is the most specific error: the one that says what went wrong.
  if (depth == 0 && error->desc) *static_cast<std::string*>(out) = error->desc;
  return 0;
}

}  // namespace

std::string take_hdf5_error() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost_message, &message);
  H5Eclear2(H5E_DEFAULT);
  return message;
}

void fail_hdf5(const std::string& file, const char* call, std::string_view object) {
  std::string reason = take_hdf5_error();
  std::string message = fmt::format("checkpoint {}: {} failed", file, call);
  if (!object.empty()) message += fmt::format(" for '{}'", object);
  if (!reason.empty()) message += ": " + reason;
  throw Error(message);
}

std::string describe_type(hid_t type) {
  size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return fmt::format("a {}-bit float", bits);
    case H5T_INTEGER:
      return fmt::format("a {}-bit {} integer", bits,
                         H5Tget_sign(type) == H5T_SGN_NONE ? "unsigned" : "signed");
    case H5T_STRING:
      return "a string";
    case H5T_COMPOUND:
      return "a compound type";
    case H5T_ENUM:
      return "an enum";
    case H5T_ARRAY:
      return "an array type";
    case H5T_VLEN:
      return "a variable-length sequence";
    case H5T_REFERENCE:
      return "a reference";
    default:
      return "an unsupported HDF5 type";
  }
}

ObjectKind object_kind(hid_t file, const std::string& file_path, const std::string& name) {
  // H5Lexists fails (rather than answering no) when an intermediate link is missing, so walk the
  // path one component at a time.
  size_t begin = 0;
  while (true) {
    size_t slash = name.find('/', begin);
    size_t end = slash == std::string::npos ? name.size() : slash;
    std::string_view component(name.data() + begin, end - begin);
    if (component.empty() || component == "." || component == "..") return ObjectKind::missing;
    std::string prefix = name.substr(0, end);
    htri_t exists = H5Lexists(file, prefix.c_str(), H5P_DEFAULT);
    if (exists < 0) fail_hdf5(file_path, "H5Lexists", prefix);
    if (exists == 0) return ObjectKind::missing;
    H5O_info_t info;
    if (H5Oget_info_by_name2(file, prefix.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
      take_hdf5_error();  // a dangling soft link: a name, but no object behind it
      return ObjectKind::missing;
    }
    ObjectKind kind = info.type == H5O_TYPE_GROUP     ? ObjectKind::group
                      : info.type == H5O_TYPE_DATASET ? ObjectKind::dataset
                                                      : ObjectKind::other;
    if (slash == std::string::npos) return kind;
    if (kind != ObjectKind::group) return ObjectKind::missing;
    begin = slash + 1;
  }
}

void write_string_attribute(hid_t location, const std::string& file, const std::string& name,
                            const std::string& value) {
  if (value.find('\0') != std::string::npos)
    fail("checkpoint {}: string attribute '{}' contains a NUL character", file, name);
  Handle type = checked_handle(H5Tcopy(H5T_C_S1), H5Tclose, file, "H5Tcopy", name);
  check_status(H5Tset_size(type.get(), H5T_VARIABLE), file, "H5Tset_size", name);
  check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "H5Tset_cset", name);
  Handle space = checked_handle(H5Screate(H5S_SCALAR), H5Sclose, file, "H5Screate", name);
  Handle attribute = checked_handle(
      H5Acreate2(location, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose, file, "H5Acreate2", name);
  const char* text = value.c_str();
  check_status(H5Awrite(attribute.get(), type.get(), &text), file, "H5Awrite", name);
}

std::string read_string_attribute(hid_t location, const std::string& file, const std::string& owner,
                                  const std::string& name) {
  Handle attribute =
      checked_handle(H5Aopen(location, name.c_str(), H5P_DEFAULT), H5Aclose, file, "H5Aopen", name);
  Handle type = checked_handle(H5Aget_type(attribute.get()), H5Tclose, file, "H5Aget_type", name);
  if (H5Tget_class(type.get()) != H5T_STRING)
    fail("checkpoint {}: attribute '{}' of {} holds {}, expected a string", file, name, owner,
         describe_type(type.get()));
  Handle space =
      checked_handle(H5Aget_space(attribute.get()), H5Sclose, file, "H5Aget_space", name);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail("checkpoint {}: attribute '{}' of {} holds several values, expected one string", file,
         name, owner);

  htri_t variable = H5Tis_variable_str(type.get());
  if (variable < 0) fail_hdf5(file, "H5Tis_variable_str", name);
  if (variable) {
    Handle memory_type = checked_handle(H5Tcopy(H5T_C_S1), H5Tclose, file, "H5Tcopy", name);
    check_status(H5Tset_size(memory_type.get(), H5T_VARIABLE), file, "H5Tset_size", name);
    check_status(H5Tset_cset(memory_type.get(), H5Tget_cset(type.get())), file, "H5Tset_cset",
                 name);
    char* text = nullptr;
    check_status(H5Aread(attribute.get(), memory_type.get(), &text), file, "H5Aread", name);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  // Fixed length: read the raw bytes, then drop the padding.
  size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  check_status(H5Aread(attribute.get(), type.get(), value.data()), file, "H5Aread", name);
  value.resize(value.find('\0') == std::string::npos ? size : value.find('\0'));
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    while (!value.empty() && value.back() == ' ') value.pop_back();
  }
  return value;
}

}  // namespace ft::checkpoint::detail
