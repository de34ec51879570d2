#include "runtime/train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <filesystem>
#include <system_error>

#include "runtime/error.h"

namespace ft {

namespace {

constexpr const char* kFileVersion = "brain.Event:2";
constexpr size_t kLengthBytes = 8, kCrcBytes = 4;

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Fixed-width integers are little-endian on disk whatever the host's byte order.
void put_le(char* out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint64_t get_le(const char* in, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i)
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

double unix_seconds_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = (crc >> 8) ^ kCrc32cTable[(crc ^ bytes[i]) & 0xFF];
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("cannot create TensorBoard directory {}: {}", dir, error.message());
  std::string stem = fmt::format("{}/events.out.tfevents.{}.{}.{}", dir,
                                 static_cast<int64_t>(unix_seconds_now()), host_name(), getpid());
  // Two writers in one process within the same second would share a name: never overwrite.
  path_ = stem;
  for (int suffix = 1; std::filesystem::exists(path_); ++suffix)
    path_ = fmt::format("{}.{}", stem, suffix);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail("cannot create TensorBoard event file {}", path_);
  tensorboard::Event event;
  event.set_wall_time(unix_seconds_now());
  event.set_file_version(kFileVersion);
  write_event(event);
  flush();
}

void TensorBoardWriter::add_scalars(int64_t step,
                                    const std::vector<std::pair<std::string, double>>& values) {
  tensorboard::Event event;
  event.set_wall_time(unix_seconds_now());
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : values) {
    tensorboard::Summary::Value* entry = summary->add_value();
    entry->set_tag(tag);
    entry->set_simple_value(static_cast<float>(value));
  }
  write_event(event);
}

void TensorBoardWriter::flush() {
  out_.flush();
  if (!out_) fail("cannot write TensorBoard event file {}", path_);
}

// Record framing: u64 length, masked CRC of the length bytes, data, masked CRC of the data.
void TensorBoardWriter::write_event(const tensorboard::Event& event) {
  std::string data = event.SerializeAsString();
  char header[kLengthBytes + kCrcBytes];
  put_le(header, data.size(), kLengthBytes);
  put_le(header + kLengthBytes, masked_crc32c(header, kLengthBytes), kCrcBytes);
  char footer[kCrcBytes];
  put_le(footer, masked_crc32c(data.data(), data.size()), kCrcBytes);
  out_.write(header, sizeof(header));
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(footer, sizeof(footer));
  if (!out_) fail("cannot write TensorBoard event file {}", path_);
}

std::vector<tensorboard::Event> read_event_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open TensorBoard event file {}", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<tensorboard::Event> events;
  size_t offset = 0;
  while (offset < bytes.size()) {
    auto where = [&] { return fmt::format("{}: record at byte offset {}", path, offset); };
    size_t remaining = bytes.size() - offset;
    if (remaining < kLengthBytes + kCrcBytes)
      fail("{}: truncated header ({} bytes, expected {})", where(), remaining,
           kLengthBytes + kCrcBytes);
    const char* header = bytes.data() + offset;
    if (get_le(header + kLengthBytes, kCrcBytes) != masked_crc32c(header, kLengthBytes))
      fail("{}: length CRC mismatch", where());
    uint64_t length = get_le(header, kLengthBytes);
    size_t after_header = remaining - kLengthBytes - kCrcBytes;
    if (after_header < kCrcBytes || length > after_header - kCrcBytes)
      fail("{}: truncated record (data length {} plus a {}-byte CRC, but {} bytes left)", where(),
           length, kCrcBytes, after_header);
    if (length > static_cast<uint64_t>(INT_MAX))
      fail("{}: data length {} is too large for an Event", where(), length);
    const char* data = header + kLengthBytes + kCrcBytes;
    if (get_le(data + length, kCrcBytes) != masked_crc32c(data, length))
      fail("{}: data CRC mismatch", where());
    tensorboard::Event& event = events.emplace_back();
    if (!event.ParseFromArray(data, static_cast<int>(length)))
      fail("{}: data is not a valid Event", where());
    offset += kLengthBytes + kCrcBytes + length + kCrcBytes;
  }
  return events;
}

}  // namespace ft
