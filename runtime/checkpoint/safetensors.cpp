#include "runtime/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "runtime/checkpoint/durable_file.h"
#include "runtime/checkpoint/safetensors_dtypes.h"

namespace ft::checkpoint {

// The format is little-endian and tensors are read into memory as stored.
static_assert(std::endian::native == std::endian::little,
              "ft's safetensors reader and writer support little-endian hosts only");

namespace {

using detail::find_safetensors_dtype;
using detail::safetensors_dtype_of;
using detail::SafetensorsDType;
using Json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the 100 MB limit of the reference reader
constexpr const char* kMetadataKey = "__metadata__";
constexpr int64_t kChunkElements = 1 << 16;  // elements converted per pread when dtypes differ

// "(2, 3, 4)", as Shape::str() writes it.
std::string dims_string(const std::vector<int64_t>& dims) {
  return fmt::format("({})", fmt::join(dims, ", "));
}

// The JSON string literal for `text`, escaped as serde_json (the library's writer) escapes it.
std::string json_string(const std::string& text, const std::string& file, const char* what) {
  try {
    return Json(text).dump();
  } catch (const Json::exception&) {
    fail("safetensors {}: {} '{}' is not valid UTF-8", file, what, text);
  }
}

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { reset(); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  // close(2) reporting its result: on some file systems a failed write surfaces only here.
  int close() { return fd_ < 0 ? 0 : ::close(std::exchange(fd_, -1)); }

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Header parsing

uint64_t unsigned_integer(const Json& value, const std::string& file, const std::string& name,
                          const char* field) {
  if (!value.is_number_unsigned())
    fail("safetensors {}: tensor '{}': {} holds {}, expected non-negative integers", file, name,
         field, value.dump());
  return value.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& name, const Json& value) {
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
      !value.contains("data_offsets"))
    fail("safetensors {}: tensor '{}' is {}, expected an object with dtype, shape and data_offsets",
         file, name, value.dump());
  SafetensorsEntry entry;
  entry.name = name;

  const Json& dtype = value["dtype"];
  const SafetensorsDType* stored =
      dtype.is_string() ? find_safetensors_dtype(dtype.get<std::string>()) : nullptr;
  if (!stored)
    fail("safetensors {}: tensor '{}' has unknown dtype {} (known: {})", file, name, dtype.dump(),
         detail::known_safetensors_dtypes());
  entry.dtype = stored->name;

  const Json& shape = value["shape"];
  if (!shape.is_array())
    fail("safetensors {}: tensor '{}': shape {} is not an array", file, name, shape.dump());
  uint64_t numel = 1;
  for (const Json& dim : shape) {
    uint64_t extent = unsigned_integer(dim, file, name, "shape");
    if (extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, extent, &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("safetensors {}: tensor '{}': shape {} has too many elements", file, name, shape.dump());
    entry.dims.push_back(static_cast<int64_t>(extent));
  }
  entry.numel = static_cast<int64_t>(numel);

  const Json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail("safetensors {}: tensor '{}': data_offsets {} is not [begin, end]", file, name,
         offsets.dump());
  entry.begin = unsigned_integer(offsets[0], file, name, "data_offsets");
  entry.end = unsigned_integer(offsets[1], file, name, "data_offsets");
  if (entry.end < entry.begin)
    fail("safetensors {}: tensor '{}': data_offsets [{}, {}] end before they begin", file, name,
         entry.begin, entry.end);

  unsigned __int128 bits = static_cast<unsigned __int128>(numel) * stored->bits;
  if (bits % 8 != 0 || bits / 8 != entry.end - entry.begin) {
    std::string needs = bits % 8 == 0 ? fmt::format("{} bytes", bits / 8)
                                      : fmt::format("{} bits (not whole bytes)", bits);
    fail("safetensors {}: tensor '{}': {} of shape {} needs {}, but data_offsets [{}, {}] hold {}",
         file, name, entry.dtype, dims_string(entry.dims), needs, entry.begin, entry.end,
         entry.end - entry.begin);
  }
  return entry;
}

// The ranges must tile [0, data_bytes) exactly, as the reference reader requires.
void check_layout(const std::string& file, const std::map<std::string, SafetensorsEntry>& entries,
                  uint64_t data_bytes) {
  std::vector<const SafetensorsEntry*> ordered;
  for (const auto& [name, entry] : entries) ordered.push_back(&entry);
  std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const SafetensorsEntry* entry : ordered) {
    if (entry->end > data_bytes)
      fail(
          "safetensors {}: tensor '{}': data_offsets [{}, {}] run past the end of the data "
          "section ({} bytes; is the file truncated?)",
          file, entry->name, entry->begin, entry->end, data_bytes);
    if (entry->begin < covered)
      fail("safetensors {}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", file,
           entry->name, entry->begin, entry->end, previous->name, previous->begin, previous->end);
    if (entry->begin > covered)
      fail("safetensors {}: tensor '{}': data_offsets [{}, {}] leave bytes [{}, {}) unused", file,
           entry->name, entry->begin, entry->end, covered, entry->begin);
    covered = entry->end;
    previous = entry;
  }
  if (covered != data_bytes)
    fail("safetensors {}: the data section has {} bytes, but the tensors use only {}", file,
         data_bytes, covered);
}

void pread_exact(int fd, void* destination, uint64_t bytes, uint64_t offset,
                 const std::string& file, const std::string& what) {
  auto* out = static_cast<unsigned char*>(destination);
  while (bytes > 0) {
    ssize_t got = ::pread(fd, out, std::min<uint64_t>(bytes, 1u << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("safetensors {}: reading {} failed: {}", file, what, std::strerror(errno));
    if (got == 0)
      fail("safetensors {}: reading {}: unexpected end of file at byte {}", file, what, offset);
    out += got;
    bytes -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SafetensorsReader

struct SafetensorsReader::Impl {
  std::string path;
  FileDescriptor file;
  uint64_t data_offset = 0;
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;

  const SafetensorsEntry& entry(const std::string& name) const {
    auto found = entries.find(name);
    if (found == entries.end()) fail("safetensors {}: no tensor '{}'", path, name);
    return found->second;
  }

  void parse_header(const std::string& text) {
    // nlohmann keeps the last of duplicate keys silently; the callback sees every top-level key.
    std::set<std::string> seen;
    std::optional<std::string> duplicate;
    auto note_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string() &&
          !seen.insert(parsed.get<std::string>()).second && !duplicate)
        duplicate = parsed.get<std::string>();
      return true;
    };
    Json header;
    try {
      header = Json::parse(text, note_keys);
    } catch (const Json::exception& error) {
      fail("safetensors {}: the header is not valid JSON: {}", path, error.what());
    }
    if (!header.is_object())
      fail("safetensors {}: the header is a JSON {}, expected an object", path, header.type_name());
    if (duplicate)
      fail("safetensors {}: tensor '{}' appears twice in the header", path, *duplicate);

    for (const auto& [name, value] : header.items()) {
      if (name == kMetadataKey) {
        if (!value.is_object())
          fail("safetensors {}: {} is {}, expected an object of strings", path, kMetadataKey,
               value.dump());
        for (const auto& [key, text] : value.items()) {
          if (!text.is_string())
            fail("safetensors {}: {} key '{}' holds {}, expected a string", path, kMetadataKey, key,
                 text.dump());
          metadata[key] = text.get<std::string>();
        }
        continue;
      }
      entries.emplace(name, parse_entry(path, name, value));
    }
  }
};

SafetensorsReader::SafetensorsReader(std::string path) : impl_(std::make_unique<Impl>()) {
  Impl& reader = *impl_;
  reader.path = std::move(path);
  const std::string& file = reader.path;
  reader.file = FileDescriptor(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!reader.file.valid()) fail("safetensors {}: cannot open: {}", file, std::strerror(errno));
  struct stat info {};
  if (::fstat(reader.file.get(), &info) != 0)
    fail("safetensors {}: cannot stat: {}", file, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail("safetensors {}: not a regular file", file);
  uint64_t file_bytes = static_cast<uint64_t>(info.st_size);

  if (file_bytes < 8)
    fail("safetensors {}: the file has {} bytes, too short for the 8-byte header length", file,
         file_bytes);
  uint64_t header_bytes = 0;  // little-endian on disk and (static_assert above) in memory
  pread_exact(reader.file.get(), &header_bytes, 8, 0, file, "the header length");
  if (header_bytes > kMaxHeaderBytes)
    fail("safetensors {}: header length {} exceeds the 100 MB limit (not a safetensors file?)",
         file, header_bytes);
  if (header_bytes > file_bytes - 8)
    fail("safetensors {}: header length {} runs past the end of the file ({} bytes)", file,
         header_bytes, file_bytes);
  std::string text(header_bytes, '\0');
  pread_exact(reader.file.get(), text.data(), header_bytes, 8, file, "the header");
  reader.parse_header(text);
  reader.data_offset = 8 + header_bytes;
  check_layout(file, reader.entries, file_bytes - reader.data_offset);
}

SafetensorsReader::~SafetensorsReader() = default;
SafetensorsReader::SafetensorsReader(SafetensorsReader&&) noexcept = default;
SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&&) noexcept = default;

const SafetensorsReader::Impl& SafetensorsReader::reader() const {
  if (!impl_) fail("safetensors: use of a moved-from SafetensorsReader");
  return *impl_;
}

const std::string& SafetensorsReader::path() const {
  return reader().path;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : reader().entries) names.push_back(name);
  return names;
}

bool SafetensorsReader::contains(const std::string& name) const {
  return reader().entries.count(name) != 0;
}

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  return reader().entry(name);
}

Shape SafetensorsReader::shape(const std::string& name) const {
  const SafetensorsEntry& entry = reader().entry(name);
  if (entry.dims.size() > static_cast<size_t>(kMaxRank))
    fail("safetensors {}: tensor '{}' has shape {} of rank {}; ft tensors have at most {} axes",
         path(), name, dims_string(entry.dims), entry.dims.size(), kMaxRank);
  Shape shape;
  shape.rank = static_cast<int>(entry.dims.size());
  std::copy(entry.dims.begin(), entry.dims.end(), shape.dims.begin());
  return shape;
}

const std::map<std::string, std::string>& SafetensorsReader::metadata() const {
  return reader().metadata;
}

uint64_t SafetensorsReader::data_section_offset() const {
  return reader().data_offset;
}

void SafetensorsReader::read(const std::string& name, const Tensor& dst) const {
  const Impl& reader = this->reader();
  const SafetensorsEntry& entry = reader.entry(name);
  const std::string& file = reader.path;
  if (dst.device != Device::cpu)
    fail("safetensors {}: tensor '{}': read() takes a CPU tensor, got {}", file, name,
         dst.describe());
  Shape stored = shape(name);
  if (!(stored == dst.shape))
    fail("safetensors {}: tensor '{}' has shape {}, but the destination has shape {}", file, name,
         stored.str(), dst.shape.str());
  if (dst.data == nullptr && dst.numel() != 0)
    fail("safetensors {}: tensor '{}': the destination ({}) has no data", file, name,
         dst.describe());
  uint64_t offset = reader.data_offset + entry.begin;
  std::string what = fmt::format("tensor '{}'", name);
  if (entry.dtype == safetensors_dtype_of(dst.dtype).name) {
    pread_exact(reader.file.get(), dst.data, entry.end - entry.begin, offset, file, what);
    return;
  }
  detail::ElementConverter convert = detail::make_element_converter(entry.dtype, dst, file, name);
  if (!convert)
    fail(
        "safetensors {}: tensor '{}' is {}, which cannot be read into {} (floats F32, F64, BF16 "
        "and F16 read into f32, f64 or bf16; integers into i32)",
        file, name, entry.dtype, dtype_name(dst.dtype));
  uint64_t element_bytes = (entry.end - entry.begin) / std::max<uint64_t>(entry.numel, 1);
  std::vector<unsigned char> staging(std::min(entry.numel, kChunkElements) * element_bytes);
  for (int64_t first = 0; first < entry.numel; first += kChunkElements) {
    int64_t count = std::min(kChunkElements, entry.numel - first);
    pread_exact(reader.file.get(), staging.data(), count * element_bytes,
                offset + first * element_bytes, file, what);
    convert(staging.data(), first, count);
  }
}

// ---------------------------------------------------------------------------------------------
// SafetensorsWriter

struct SafetensorsWriter::Impl {
  struct Pending {
    const SafetensorsDType* dtype;
    std::vector<int64_t> dims;
    std::vector<unsigned char> bytes;
  };

  // Declared first so that it is destroyed last: an uncommitted tmp is deleted after `tmp` has
  // closed it, on destruction and on move-assignment alike.
  detail::DurableFile output;
  FileDescriptor tmp;  // open until commit()
  std::map<std::string, Pending> tensors;
  std::map<std::string, std::string> metadata;

  explicit Impl(std::string final_path) : output("safetensors", std::move(final_path)) {}

  void require_open(const char* call) const {
    if (!tmp.valid())
      fail("safetensors {}: {} on a writer that was already committed (or failed to commit)",
           output.final_path(), call);
  }

  // The header: "__metadata__" first, then tensors in data order, as the library writes it.
  std::string header(const std::vector<const std::pair<const std::string, Pending>*>& order) const {
    std::string json = "{";
    if (!metadata.empty()) {
      json += fmt::format("\"{}\":{{", kMetadataKey);
      bool first = true;
      for (const auto& [key, value] : metadata) {
        if (!first) json += ",";
        json += json_string(key, output.final_path(), "metadata key");
        json += ":";
        json += json_string(value, output.final_path(), "metadata value");
        first = false;
      }
      json += "}";
    }
    uint64_t offset = 0;
    for (const auto* tensor : order) {
      const Pending& pending = tensor->second;
      json += fmt::format("{}{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                          json.size() > 1 ? "," : "",
                          json_string(tensor->first, output.final_path(), "tensor name"),
                          pending.dtype->name, fmt::join(pending.dims, ","), offset,
                          offset + pending.bytes.size());
      offset += pending.bytes.size();
    }
    json += "}";
    json.append((8 - json.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    return json;
  }

  void write_all(const void* data, size_t bytes) {
    const auto* in = static_cast<const unsigned char*>(data);
    while (bytes > 0) {
      ssize_t written = ::write(tmp.get(), in, std::min<size_t>(bytes, 1u << 30));
      if (written < 0 && errno == EINTR) continue;
      if (written < 0)
        fail("safetensors {}: writing {} failed: {}", output.final_path(), output.tmp_path(),
             std::strerror(errno));
      in += written;
      bytes -= static_cast<size_t>(written);
    }
  }
};

SafetensorsWriter::SafetensorsWriter(std::string final_path) {
  if (final_path.empty()) fail("SafetensorsWriter: empty file path");
  impl_ = std::make_unique<Impl>(std::move(final_path));
  Impl& writer = *impl_;
  const std::string& tmp_path = writer.output.tmp_path();
  writer.tmp =
      FileDescriptor(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!writer.tmp.valid())
    fail("safetensors {}: cannot create {}: {}", writer.output.final_path(), tmp_path,
         std::strerror(errno));
  writer.output.tmp_created();
}

SafetensorsWriter::~SafetensorsWriter() = default;
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&&) noexcept = default;

SafetensorsWriter::Impl& SafetensorsWriter::writer(const char* call) {
  if (!impl_) fail("safetensors: {} on a moved-from SafetensorsWriter", call);
  return *impl_;
}

void SafetensorsWriter::add(const std::string& name, const Tensor& tensor) {
  const std::string& file = writer("add").output.final_path();
  if (tensor.device != Device::cpu)
    fail("safetensors {}: tensor '{}' is {}; add() takes CPU tensors", file, name,
         tensor.describe());
  if (tensor.data == nullptr && tensor.numel() != 0)
    fail("safetensors {}: tensor '{}' ({}) has no data", file, name, tensor.describe());
  add_encoded(
      name, safetensors_dtype_of(tensor.dtype).name,
      std::vector<int64_t>(tensor.shape.dims.begin(), tensor.shape.dims.begin() + tensor.rank()),
      tensor.data);
}

void SafetensorsWriter::add_encoded(const std::string& name, const std::string& dtype,
                                    const std::vector<int64_t>& dims, const void* data) {
  Impl& writer = this->writer("add");
  writer.require_open("add");
  const std::string& file = writer.output.final_path();
  if (name.empty() || name == kMetadataKey)
    fail("safetensors {}: invalid tensor name '{}'", file, name);
  json_string(name, file, "tensor name");
  if (writer.tensors.count(name)) fail("safetensors {}: tensor '{}' added twice", file, name);
  const SafetensorsDType* stored = find_safetensors_dtype(dtype);
  if (stored == nullptr || stored->bits % 8 != 0)
    fail("safetensors {}: tensor '{}' has dtype '{}', expected a whole-byte dtype of {}", file,
         name, dtype, detail::known_safetensors_dtypes());
  int64_t numel = 1;
  for (int64_t dim : dims) {
    if (dim < 0) fail("safetensors {}: tensor '{}' has a negative dimension {}", file, name, dim);
    numel *= dim;
  }
  const size_t bytes = static_cast<size_t>(numel) * static_cast<size_t>(stored->bits / 8);
  if (data == nullptr && bytes != 0) fail("safetensors {}: tensor '{}' has no data", file, name);
  const auto* begin = static_cast<const unsigned char*>(data);
  Impl::Pending pending{stored, dims, std::vector<unsigned char>(begin, begin + bytes)};
  writer.tensors.emplace(name, std::move(pending));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  Impl& writer = this->writer("set_metadata");
  writer.require_open("set_metadata");
  const std::string& file = writer.output.final_path();
  json_string(key, file, "metadata key");
  json_string(value, file, "metadata value");
  if (!writer.metadata.emplace(key, value).second)
    fail("safetensors {}: metadata '{}' set twice", file, key);
}

void SafetensorsWriter::commit() {
  Impl& writer = this->writer("commit");
  writer.require_open("commit");
  const std::string& file = writer.output.final_path();
  std::vector<const std::pair<const std::string, Impl::Pending>*> order;
  for (const auto& tensor : writer.tensors) order.push_back(&tensor);
  auto rank = [](const SafetensorsDType* dtype) { return dtype->order; };
  std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
    return rank(a->second.dtype) > rank(b->second.dtype);  // stable: names stay sorted
  });

  std::string header = writer.header(order);
  uint64_t header_bytes = header.size();
  writer.write_all(&header_bytes, 8);
  writer.write_all(header.data(), header.size());
  for (const auto* tensor : order)
    writer.write_all(tensor->second.bytes.data(), tensor->second.bytes.size());
  if (::fsync(writer.tmp.get()) != 0)
    fail("safetensors {}: fsync of {} failed: {}", file, writer.output.tmp_path(),
         std::strerror(errno));
  if (writer.tmp.close() != 0)
    fail("safetensors {}: closing {} failed: {}", file, writer.output.tmp_path(),
         std::strerror(errno));
  writer.tensors.clear();

  writer.output.commit();
}

}  // namespace ft::checkpoint
