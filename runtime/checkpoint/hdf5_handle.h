// Internal to runtime/checkpoint: RAII ownership of HDF5 identifiers and the conversion of HDF5
// failures into ft::Error. Kept out of the public headers because <hdf5.h> of the Open MPI
// flavour pulls in <mpi.h>.
#pragma once

#include <hdf5.h>

#include <string>
#include <string_view>
#include <utility>

namespace ft::checkpoint::detail {

// HDF5 prints its error stack to stderr by default; ft reports failures as ft::Error instead.
void silence_hdf5_errors();

// The most specific message on this thread's HDF5 error stack (empty if none); clears the stack.
std::string take_hdf5_error();

// Throws ft::Error "checkpoint <file>: <call> failed for '<object>': <HDF5's reason>".
[[noreturn]] void fail_hdf5(const std::string& file, const char* call, std::string_view object);

// Owns one hid_t and closes it with the H5*close that matches its kind.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept
      : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and returns the close's status (closing a file flushes it, which can fail).
  herr_t close() {
    herr_t status = id_ >= 0 ? closer_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return status;
  }
  void reset() noexcept { close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Wraps a freshly returned identifier, throwing (with the call and object) if the call failed.
inline Handle checked_handle(hid_t id, Handle::Closer closer, const std::string& file,
                             const char* call, std::string_view object) {
  if (id < 0) fail_hdf5(file, call, object);
  return Handle(id, closer);
}

inline void check_status(herr_t status, const std::string& file, const char* call,
                         std::string_view object) {
  if (status < 0) fail_hdf5(file, call, object);
}

// "a 32-bit float", "a 16-bit unsigned integer", "a string", ...: for messages.
std::string describe_type(hid_t type);

// What a path inside the file names. Intermediate components that are not groups make the
// path `missing`, as do empty components.
enum class ObjectKind { missing, group, dataset, other };
ObjectKind object_kind(hid_t file, const std::string& file_path, const std::string& name);

// A scalar UTF-8 variable-length string attribute on `location` (h5py reads it as str).
void write_string_attribute(hid_t location, const std::string& file, const std::string& name,
                            const std::string& value);
// Reads a string attribute, variable or fixed length; `owner` names where it hangs in messages.
std::string read_string_attribute(hid_t location, const std::string& file, const std::string& owner,
                                  const std::string& name);

}  // namespace ft::checkpoint::detail
