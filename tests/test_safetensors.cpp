// safetensors: bit-exact round trips, files of the Python library read exactly and written
// byte-identically, dtype conversion, a clear error for every malformed header, and the
// tmp + rename protocol of the writer.
//
// tests/data/safetensors/*.safetensors come from tools/make_safetensors_fixtures.py (the Python
// `safetensors` library); the values checked here are the ones that script writes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/checkpoint/safetensors.h"
#include "tests/support/expect_contains.h"
#include "tests/support/gradcheck.h"
#include "tests/support/round_trip_tensors.h"
#include "tests/support/temp_dir.h"

namespace ft::checkpoint {
namespace {

using ft::testing::bytes_of;
using ft::testing::error_message;
using ft::testing::random_bit_patterns;
using ft::testing::read_file;
using ft::testing::RoundTripTensors;
using ft::testing::TempDir;

namespace fs = std::filesystem;
using Names = std::vector<std::string>;

const std::string kFixtures = std::string(FT_TEST_DATA_DIR) + "/safetensors/";

// A file of 8-byte length + header + data, with the length given explicitly where a test lies.
std::string write_raw(const TempDir& dir, const std::string& name, const std::string& header,
                      const std::string& data, std::optional<uint64_t> length = std::nullopt) {
  uint64_t header_length = length.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &header_length, 8);
  return dir.write(name, bytes + header + data);
}

std::vector<bf16> bf16_bits(std::initializer_list<uint16_t> bits) {
  std::vector<bf16> values;
  for (uint16_t value : bits) values.push_back(bf16{value});
  return values;
}

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// Writes every ft dtype in several shapes (scalar, one element, empty included), reads them
// back into the same dtype and compares the bytes.
TEST(Safetensors, RoundTripIsBitExactForEveryDTypeAndShape) {
  TempDir dir;
  std::string path = dir.path("roundtrip.safetensors");
  RoundTripTensors tensors(
      {{}, {1}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {0, 4}},
      {{DType::f32, "f32."}, {DType::f64, "f64."}, {DType::i32, "i32."}, {DType::bf16, "bf16."}});
  {
    SafetensorsWriter writer(path);
    tensors.write_each(
        [&](const std::string& name, const Tensor& tensor) { writer.add(name, tensor); });
    writer.set_metadata("format", "pt");
    writer.commit();
  }
  // The writer copied at add(): scribbling over the sources now must not matter.
  tensors.scribble_over_sources();

  SafetensorsReader reader(path);
  EXPECT_EQ(reader.path(), path);
  EXPECT_EQ(reader.names().size(), tensors.size());
  EXPECT_EQ(reader.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  tensors.expect_each_read_back(
      [&](const std::string& name, const Tensor& dst) { reader.read(name, dst); });
  for (size_t i = 0; i < tensors.shapes().size(); ++i) {
    SCOPED_TRACE("shape " + tensors.shapes()[i].str());
    EXPECT_EQ(reader.shape(tensors.name(DType::bf16, i)), tensors.shapes()[i]);
    EXPECT_EQ(reader.entry(tensors.name(DType::bf16, i)).dtype, "BF16");
    EXPECT_EQ(reader.entry(tensors.name(DType::f64, i)).numel, tensors.shapes()[i].numel());
  }
}

// The same tensors and metadata as tools/make_safetensors_fixtures.py's writer_reference(),
// added in another order: ft's file must equal the library's byte for byte.
TEST(Safetensors, WriterOutputIsByteIdenticalToThePythonLibrary) {
  std::vector<float> up_proj(12);
  for (int i = 0; i < 12; ++i) up_proj[i] = static_cast<float>(i - 5) * 0.375f;
  std::vector<bf16> lm_head(6), bias(4);
  for (int i = 0; i < 6; ++i) lm_head[i].bits = static_cast<uint16_t>(0x3F00 + 37 * i);
  for (int i = 0; i < 4; ++i) bias[i].bits = static_cast<uint16_t>(0xBF00 + 3 * i);
  std::vector<double> scale(5);
  for (int i = 0; i < 5; ++i) scale[i] = 1.0 / (i + 1);
  std::vector<int32_t> ids(4);
  for (int i = 0; i < 4; ++i) ids[i] = i * i * 1000 - 7;
  float scalar = 2.5f;
  int32_t one = -1;

  TempDir dir;
  std::string path = dir.path("ours.safetensors");
  SafetensorsWriter writer(path);
  writer.add("z.bias", Tensor(bias.data(), DType::bf16, {4}));
  writer.add("one", Tensor(&one, DType::i32, {1}));
  writer.add("\xc3\xa9.scalar", Tensor(&scalar, DType::f32, {}));
  writer.add("lm_head.weight", Tensor(lm_head.data(), DType::bf16, {2, 3}));
  writer.add("empty", Tensor(nullptr, DType::f32, {0, 3}));
  writer.add("ids", Tensor(ids.data(), DType::i32, {4}));
  writer.add("scale", Tensor(scale.data(), DType::f64, {5}));
  writer.add("model.layers.0.mlp.up_proj.weight", Tensor(up_proj.data(), DType::f32, {3, 4}));
  writer.set_metadata("note", "tab\t quote\" backslash\\ slash/ \xc3\xa9 ctl\x01 del\x7f");
  writer.commit();

  std::string expected = read_file(kFixtures + "python_writer_reference.safetensors");
  ASSERT_FALSE(expected.empty()) << "missing fixture";
  std::string ours = read_file(path);
  EXPECT_EQ(ours.size(), expected.size());
  EXPECT_TRUE(ours == expected) << "ours:\n" << ours << "\nlibrary:\n" << expected;
}

TEST(Safetensors, ReadsEveryDTypeOfAFileFromThePythonLibrary) {
  SafetensorsReader reader(kFixtures + "python_all_dtypes.safetensors");
  EXPECT_EQ(reader.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(reader.names(),
            (Names{"a.f32", "b.f64", "c.bf16", "d.f16", "e.i64", "f.i32", "g.scalar", "h.one",
                   "i.empty", "j.u8", "k.i16", "l.bool", "m.i64_big", "n.f8", "o.u32"}));
  EXPECT_TRUE(reader.contains("c.bf16"));
  EXPECT_FALSE(reader.contains("__metadata__"));
  // The library's layout: widest dtypes first (I64 before F64 before F32 ...), then by name.
  const SafetensorsEntry& e = reader.entry("e.i64");
  EXPECT_EQ(e.name, "e.i64");
  EXPECT_EQ(e.dtype, "I64");
  EXPECT_EQ(e.dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(e.begin, 0u);
  EXPECT_EQ(e.end, 24u);
  EXPECT_EQ(reader.entry("a.f32").begin, 72u);
  EXPECT_EQ(reader.entry("l.bool").end, 157u);
  EXPECT_EQ(reader.data_section_offset() % 8, 0u);

  std::vector<float> a(6);
  reader.read("a.f32", Tensor(a.data(), DType::f32, {2, 3}));
  EXPECT_EQ(a, (std::vector<float>{-1.5f, 0.0f, 0.1f, 3.25f, -0.0f, 1e30f}));
  EXPECT_TRUE(std::signbit(a[4]));

  std::vector<double> b(4);
  reader.read("b.f64", Tensor(b.data(), DType::f64, {4}));
  EXPECT_EQ(b, (std::vector<double>{1.0 / 3, -2.5, 1e300, 5e-324}));

  std::vector<bf16> c(6);
  reader.read("c.bf16", Tensor(c.data(), DType::bf16, {3, 2}));
  EXPECT_EQ(bytes_of(c), bytes_of(bf16_bits({0x3F80, 0xC000, 0x7F80, 0x0001, 0x8000, 0x4049})));

  std::vector<float> d(5);  // F16 has no ft dtype: read as f32, exactly
  reader.read("d.f16", Tensor(d.data(), DType::f32, {5}));
  EXPECT_EQ(d, (std::vector<float>{1.0f, -2.5f, 65504.0f, std::ldexp(1.0f, -24),
                                   -std::numeric_limits<float>::infinity()}));

  std::vector<int32_t> e_values(3), f(4), j(2), k(2), l(3), o(1);
  reader.read("e.i64", Tensor(e_values.data(), DType::i32, {3}));
  EXPECT_EQ(e_values, (std::vector<int32_t>{-5, 0, 2147483647}));
  reader.read("f.i32", Tensor(f.data(), DType::i32, {2, 2}));
  EXPECT_EQ(f, (std::vector<int32_t>{std::numeric_limits<int32_t>::min(), -1, 0, 7}));
  reader.read("j.u8", Tensor(j.data(), DType::i32, {2}));
  EXPECT_EQ(j, (std::vector<int32_t>{0, 255}));
  reader.read("k.i16", Tensor(k.data(), DType::i32, {2}));
  EXPECT_EQ(k, (std::vector<int32_t>{-32768, 32767}));
  reader.read("l.bool", Tensor(l.data(), DType::i32, {3}));
  EXPECT_EQ(l, (std::vector<int32_t>{1, 0, 1}));

  float scalar = 0, one = 0;
  reader.read("g.scalar", Tensor(&scalar, DType::f32, {}));
  EXPECT_EQ(scalar, 4.5f);
  EXPECT_EQ(reader.shape("g.scalar"), Shape{});
  reader.read("h.one", Tensor(&one, DType::f32, {1}));
  EXPECT_EQ(one, -7.0f);
  EXPECT_EQ(reader.entry("i.empty").dims, (std::vector<int64_t>{0, 4}));
  reader.read("i.empty", Tensor(nullptr, DType::f32, {0, 4}));

  // Values that do not fit, and a dtype ft cannot hold: errors naming tensor, file and value.
  std::string big =
      error_message([&] { reader.read("m.i64_big", Tensor(j.data(), DType::i32, {2})); });
  EXPECT_CONTAINS(big, "python_all_dtypes.safetensors");
  EXPECT_CONTAINS(big, "'m.i64_big'");
  EXPECT_CONTAINS(big, "element 1 is 1099511627776");
  std::string u32 = error_message([&] { reader.read("o.u32", Tensor(o.data(), DType::i32, {1})); });
  EXPECT_CONTAINS(u32, "'o.u32'");
  EXPECT_CONTAINS(u32, "4294967295");
  std::string f8 = error_message([&] { reader.read("n.f8", Tensor(a.data(), DType::f32, {2})); });
  EXPECT_CONTAINS(f8, "'n.f8' is F8_E4M3, which cannot be read into f32");
  std::string int_as_float =
      error_message([&] { reader.read("e.i64", Tensor(a.data(), DType::f32, {3})); });
  EXPECT_CONTAINS(int_as_float, "'e.i64' is I64, which cannot be read into f32");
  std::string float_as_int = error_message([&] {
    reader.read("a.f32", Tensor(f.data(), DType::i32, {2, 3}));
  });
  EXPECT_CONTAINS(float_as_int, "'a.f32' is F32, which cannot be read into i32");
}

TEST(Safetensors, ConvertsBetweenBf16AndF32AndF64) {
  TempDir dir;
  std::string path = dir.path("convert.safetensors");
  std::vector<float> f32 = random_bit_patterns<float, uint32_t>(1000, 7);
  f32.insert(f32.end(), {1.0f, 1.00390625f, 1.01171875f, -0.0f, 3.4e38f, 1e-40f});
  std::vector<bf16> bf = random_bit_patterns<bf16, uint16_t>(1000, 8);
  std::vector<double> f64 = {0.1, -1e-300, 1e300, 2.0 / 3};
  {
    SafetensorsWriter writer(path);
    writer.add("f32", Tensor(f32.data(), DType::f32, {static_cast<int64_t>(f32.size())}));
    writer.add("bf16", Tensor(bf.data(), DType::bf16, {10, 100}));
    writer.add("f64", Tensor(f64.data(), DType::f64, {2, 2}));
    writer.commit();
  }
  SafetensorsReader reader(path);

  std::vector<bf16> f32_as_bf16(f32.size());
  reader.read("f32", Tensor(f32_as_bf16.data(), DType::bf16, {static_cast<int64_t>(f32.size())}));
  for (size_t i = 0; i < f32.size(); ++i)
    ASSERT_EQ(f32_as_bf16[i].bits, float_to_bf16(f32[i]).bits) << "element " << i;
  // 1 + 2^-8 is a tie: rounds to even (1.0); 1 + 3 * 2^-8 rounds up.
  EXPECT_EQ(f32_as_bf16[1001].bits, 0x3F80);
  EXPECT_EQ(f32_as_bf16[1002].bits, 0x3F82);

  std::vector<float> bf16_as_f32(bf.size());
  reader.read("bf16", Tensor(bf16_as_f32.data(), DType::f32, {10, 100}));
  for (size_t i = 0; i < bf.size(); ++i)  // widening is exact, NaN payloads included
    ASSERT_EQ(float_bits(bf16_as_f32[i]), static_cast<uint32_t>(bf[i].bits) << 16)
        << "element " << i;

  std::vector<double> bf16_as_f64(bf.size());
  reader.read("bf16", Tensor(bf16_as_f64.data(), DType::f64, {10, 100}));
  for (size_t i = 0; i < bf.size(); ++i) {
    double expected = bf16_to_float(bf[i]);
    if (std::isnan(expected))
      ASSERT_TRUE(std::isnan(bf16_as_f64[i])) << "element " << i;
    else
      ASSERT_EQ(bf16_as_f64[i], expected) << "element " << i;
  }

  std::vector<float> f64_as_f32(4);
  std::vector<bf16> f64_as_bf16(4);
  reader.read("f64", Tensor(f64_as_f32.data(), DType::f32, {2, 2}));
  reader.read("f64", Tensor(f64_as_bf16.data(), DType::bf16, {2, 2}));
  for (size_t i = 0; i < f64.size(); ++i) {
    EXPECT_EQ(f64_as_f32[i], static_cast<float>(f64[i]));
    EXPECT_EQ(f64_as_bf16[i].bits, float_to_bf16(static_cast<float>(f64[i])).bits);
  }

  // F16 from the library's file into bf16: 65504 rounds to 65536 (0x4780).
  SafetensorsReader python(kFixtures + "python_all_dtypes.safetensors");
  std::vector<bf16> f16_as_bf16(5);
  python.read("d.f16", Tensor(f16_as_bf16.data(), DType::bf16, {5}));
  EXPECT_EQ(bytes_of(f16_as_bf16), bytes_of(bf16_bits({0x3F80, 0xC020, 0x4780, 0x3380, 0xFF80})));
}

// A conversion larger than one staging chunk (65536 elements) lands every element.
TEST(Safetensors, ConversionCoversTensorsLargerThanOneChunk) {
  TempDir dir;
  std::string path = dir.path("large.safetensors");
  const int64_t count = 3 * 65536 + 17;
  std::vector<int32_t> values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = static_cast<int32_t>(i * 3 - 5);
  std::vector<float> floats(values.begin(), values.end());
  {
    SafetensorsWriter writer(path);
    writer.add("floats", Tensor(floats.data(), DType::f32, {count}));
    writer.commit();
  }
  std::vector<double> widened(count);
  SafetensorsReader(path).read("floats", Tensor(widened.data(), DType::f64, {count}));
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(widened[i], values[i]) << "element " << i;
}

TEST(Safetensors, ReadChecksTheNameAndDestination) {
  SafetensorsReader reader(kFixtures + "python_all_dtypes.safetensors");
  std::vector<float> buffer(8);
  std::string wrong_shape = error_message([&] {
    reader.read("a.f32", Tensor(buffer.data(), DType::f32, {3, 2}));
  });
  EXPECT_CONTAINS(wrong_shape, "python_all_dtypes.safetensors");
  EXPECT_CONTAINS(wrong_shape, "'a.f32' has shape (2, 3), but the destination has shape (3, 2)");
  std::string wrong_count =
      error_message([&] { reader.read("a.f32", Tensor(buffer.data(), DType::f32, {8})); });
  EXPECT_CONTAINS(wrong_count, "(2, 3)");
  EXPECT_CONTAINS(wrong_count, "(8)");
  std::string absent = error_message([&] { reader.entry("model.norm.weight"); });
  EXPECT_CONTAINS(absent, "python_all_dtypes.safetensors: no tensor 'model.norm.weight'");
  EXPECT_CONTAINS(
      error_message([&] { reader.read("nope", Tensor(buffer.data(), DType::f32, {1})); }),
      "no tensor 'nope'");
  int fake_device_memory = 0;
  EXPECT_CONTAINS(error_message([&] {
                    reader.read("h.one",
                                Tensor(&fake_device_memory, DType::f32, {1}, Device::cuda));
                  }),
                  "takes a CPU tensor");
  EXPECT_CONTAINS(error_message([&] { reader.read("h.one", Tensor(nullptr, DType::f32, {1})); }),
                  "has no data");
  EXPECT_CONTAINS(error_message([] { SafetensorsReader("/nonexistent/dir/x.safetensors"); }),
                  "/nonexistent/dir/x.safetensors: cannot open");

  SafetensorsReader moved = std::move(reader);
  EXPECT_TRUE(moved.contains("a.f32"));
  EXPECT_CONTAINS(error_message([&] { reader.names(); }),
                  "moved-from");  // NOLINT(bugprone-use-after-move)
}

// Every class of malformed file: the message names the file, what is wrong and, where one is
// involved, the tensor.
TEST(Safetensors, MalformedFilesAreErrorsNamingFileAndTensor) {
  struct Case {
    const char* label;
    std::string header;
    std::string data;
    std::optional<uint64_t> length;
    std::vector<std::string> expected;  // parts of the message
  };
  const std::string w4 = R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  const std::vector<Case> cases = {
      {"header length past EOF",
       "{}",
       "",
       100,
       {"header length 100 runs past the end of the file"}},
      {"header over 100 MB", "{}", "", 200'000'000, {"exceeds the 100 MB limit"}},
      {"bad JSON", R"({"w":{"dtype":"F32",)", "", {}, {"not valid JSON"}},
      {"invalid UTF-8", "{\"\xff\":1}", "", {}, {"not valid JSON"}},
      {"not an object", "[1, 2]", "", {}, {"the header is a JSON array, expected an object"}},
      {"metadata not strings",
       R"({"__metadata__":{"format":1}})",
       "",
       {},
       {"__metadata__ key 'format' holds 1"}},
      {"metadata not an object", R"({"__metadata__":"pt"})", "", {}, {"__metadata__ is \"pt\""}},
      {"entry not an object", R"({"w":3})", "", {}, {"tensor 'w' is 3"}},
      {"entry without data_offsets",
       R"({"w":{"dtype":"F32","shape":[1]}})",
       "",
       {},
       {"tensor 'w'", "expected an object with dtype, shape and data_offsets"}},
      {"unknown dtype",
       R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})",
       std::string(4, '\0'),
       {},
       {"tensor 'w' has unknown dtype \"Q7\"", "BF16"}},
      {"negative dim",
       R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
       std::string(4, '\0'),
       {},
       {"tensor 'w': shape holds -1"}},
      {"fractional dim",
       R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
       std::string(4, '\0'),
       {},
       {"tensor 'w': shape holds 1.5"}},
      {"too many elements",
       R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})",
       std::string(4, '\0'),
       {},
       {"tensor 'w'", "too many elements"}},
      {"three offsets",
       R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})",
       std::string(8, '\0'),
       {},
       {"tensor 'w': data_offsets [0,4,8] is not [begin, end]"}},
      {"end before begin",
       R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})",
       std::string(4, '\0'),
       {},
       {"tensor 'w'", "end before they begin"}},
      {"size mismatch",
       R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
       std::string(8, '\0'),
       {},
       {"tensor 'w': F32 of shape (3) needs 12 bytes", "hold 8"}},
      {"out of bounds",
       R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
       std::string(8, '\0'),
       {},
       {"tensor 'w'", "run past the end of the data section (8 bytes"}},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'),
       {},
       {"tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"}},
      {"gap",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       std::string(12, '\0'),
       {},
       {"tensor 'b'", "leave bytes [4, 8) unused"}},
      {"trailing bytes",
       "{" + w4 + "}",
       std::string(8, '\0'),
       {},
       {"the data section has 8 bytes, but the tensors use only 4"}},
      {"duplicate name",
       "{" + w4 + "," + w4 + "}",
       std::string(4, '\0'),
       {},
       {"tensor 'w' appears twice"}},
  };
  TempDir dir;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& test = cases[i];
    SCOPED_TRACE(test.label);
    std::string path = write_raw(dir, "case" + std::to_string(i) + ".safetensors", test.header,
                                 test.data, test.length);
    std::string message = error_message([&] { SafetensorsReader reader(path); });
    EXPECT_CONTAINS(message, "safetensors " + path + ": ");
    for (const std::string& part : test.expected) EXPECT_CONTAINS(message, part);
  }

  // Files too short to hold the length, and a header of spaces only.
  std::string empty = dir.write("empty.safetensors", "");
  EXPECT_CONTAINS(error_message([&] { SafetensorsReader reader(empty); }),
                  empty + ": the file has 0 bytes, too short for the 8-byte header length");
  std::string short_file = dir.write("short.safetensors", "abc");
  EXPECT_CONTAINS(error_message([&] { SafetensorsReader reader(short_file); }),
                  short_file + ": the file has 3 bytes");
  std::string blank = write_raw(dir, "blank.safetensors", "        ", "");
  EXPECT_CONTAINS(error_message([&] { SafetensorsReader reader(blank); }), "not valid JSON");

  // The smallest valid files: an empty object, and one padded with spaces as the library pads.
  EXPECT_TRUE(SafetensorsReader(write_raw(dir, "none.safetensors", "{}", "")).names().empty());
  SafetensorsReader padded(write_raw(dir, "padded.safetensors", "{" + w4 + "}   ", "abcd"));
  EXPECT_EQ(padded.names(), Names{"w"});
}

// A file cut short after writing (a copy that stopped, a full disk) names the tensor that lost
// its data.
TEST(Safetensors, TruncatedFileNamesTheTensorPastTheEnd) {
  TempDir dir;
  std::string path = dir.path("cut.safetensors");
  std::vector<float> values(16, 1.0f);
  std::vector<bf16> halves(8);
  {
    SafetensorsWriter writer(path);
    writer.add("big", Tensor(values.data(), DType::f32, {4, 4}));
    writer.add("small", Tensor(halves.data(), DType::bf16, {8}));  // BF16 goes last
    writer.commit();
  }
  fs::resize_file(path, fs::file_size(path) - 3);
  std::string message = error_message([&] { SafetensorsReader reader(path); });
  EXPECT_CONTAINS(message, path);
  EXPECT_CONTAINS(message, "tensor 'small': data_offsets [64, 80] run past the end");
  EXPECT_CONTAINS(message, "truncated");
}

TEST(Safetensors, RankAboveFourIsListedButNotReadable) {
  TempDir dir;
  std::string path = write_raw(
      dir, "rank5.safetensors",
      R"({"conv":{"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.entry("conv").dims, (std::vector<int64_t>{1, 1, 1, 1, 2}));
  std::vector<float> buffer(2);
  std::string message =
      error_message([&] { reader.read("conv", Tensor(buffer.data(), DType::f32, {2})); });
  EXPECT_CONTAINS(message, path);
  EXPECT_CONTAINS(message, "tensor 'conv' has shape (1, 1, 1, 1, 2) of rank 5");
}

// Offsets past 4 GiB go through pread as 64-bit offsets, and opening the file reads only the
// header (the 4 GiB tensor is a hole in a sparse file).
TEST(Safetensors, OpensALargeFileByItsHeaderAndReadsPast4GiB) {
  TempDir dir;
  const uint64_t big_bytes = uint64_t{1} << 32;
  std::string header =
      fmt::format(R"({{"big":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}},)"
                  R"("tail":{{"dtype":"F32","shape":[2],"data_offsets":[{},{}]}}}})",
                  big_bytes / 4, big_bytes, big_bytes, big_bytes + 8);
  std::string path = write_raw(dir, "sparse.safetensors", header, "");
  uint64_t data_offset = 8 + header.size();
  fs::resize_file(path, data_offset + big_bytes + 8);
  {
    const float tail[2] = {1.25f, -3.5f};
    FILE* file = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    ASSERT_EQ(fseeko(file, static_cast<off_t>(data_offset + big_bytes), SEEK_SET), 0);
    ASSERT_EQ(std::fwrite(tail, sizeof(float), 2, file), 2u);
    ASSERT_EQ(std::fclose(file), 0);
  }
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.entry("big").numel, static_cast<int64_t>(big_bytes / 4));
  std::vector<double> tail(2);
  reader.read("tail", Tensor(tail.data(), DType::f64, {2}));
  EXPECT_EQ(tail, (std::vector<double>{1.25, -3.5}));
  std::vector<float> same(2);
  reader.read("tail", Tensor(same.data(), DType::f32, {2}));
  EXPECT_EQ(same, (std::vector<float>{1.25f, -3.5f}));
}

TEST(Safetensors, UncommittedWriterLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  std::string path = dir.path("sub/adapter.safetensors");
  float value = 1.0f;
  {
    SafetensorsWriter writer(path);  // creates the missing directory
    writer.add("w", Tensor(&value, DType::f32, {1}));
    EXPECT_TRUE(fs::exists(path + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  dir.write("sub/adapter.safetensors", "previous");
  {
    SafetensorsWriter writer(path);
    writer.add("w", Tensor(&value, DType::f32, {1}));
    writer.set_metadata("format", "pt");
    EXPECT_EQ(read_file(path), "previous");
  }
  EXPECT_EQ(read_file(path), "previous");
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Moving a writer onto another drops the other's tmp; the moved-to one still commits.
  {
    SafetensorsWriter first(dir.path("first.safetensors"));
    SafetensorsWriter second(path);
    second.add("w", Tensor(&value, DType::f32, {1}));
    first = std::move(second);
    EXPECT_FALSE(fs::exists(dir.path("first.safetensors.tmp")));
    first.commit();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.names(), Names{"w"});
  EXPECT_TRUE(reader.metadata().empty());
  // No metadata: no "__metadata__" key, as the library writes with metadata=None.
  EXPECT_EQ(read_file(path).find("__metadata__"), std::string::npos);
}

TEST(Safetensors, WriterRejectsMisuseNamingTheFile) {
  TempDir dir;
  std::string path = dir.path("misuse.safetensors");
  SafetensorsWriter writer(path);
  float value = 1.0f;
  writer.add("w", Tensor(&value, DType::f32, {1}));
  EXPECT_CONTAINS(error_message([&] { writer.add("w", Tensor(&value, DType::f32, {1})); }),
                  path + ": tensor 'w' added twice");
  EXPECT_CONTAINS(
      error_message([&] { writer.add("__metadata__", Tensor(&value, DType::f32, {1})); }),
      "invalid tensor name '__metadata__'");
  EXPECT_CONTAINS(error_message([&] { writer.add("", Tensor(&value, DType::f32, {1})); }),
                  "invalid tensor name ''");
  EXPECT_CONTAINS(error_message([&] { writer.add("bad\xff", Tensor(&value, DType::f32, {1})); }),
                  "not valid UTF-8");
  EXPECT_CONTAINS(
      error_message([&] { writer.add("gpu", Tensor(&value, DType::f32, {1}, Device::cuda)); }),
      "tensor 'gpu' is f32 cuda (1); add() takes CPU tensors");
  EXPECT_CONTAINS(error_message([&] { writer.add("null", Tensor(nullptr, DType::f32, {2})); }),
                  "tensor 'null' (f32 cpu (2)) has no data");
  writer.set_metadata("format", "pt");
  EXPECT_CONTAINS(error_message([&] { writer.set_metadata("format", "np"); }),
                  "metadata 'format' set twice");
  writer.commit();
  EXPECT_CONTAINS(error_message([&] { writer.add("x", Tensor(&value, DType::f32, {1})); }),
                  "already committed");
  EXPECT_CONTAINS(error_message([&] { writer.commit(); }), "already committed");
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.names(), Names{"w"});  // the failed adds left nothing behind

  SafetensorsWriter moved = std::move(writer);
  EXPECT_CONTAINS(error_message([&] { writer.commit(); }),
                  "moved-from");  // NOLINT(bugprone-use-after-move)
  EXPECT_CONTAINS(error_message([] { SafetensorsWriter writer(""); }), "empty file path");
}

// Several metadata keys are written sorted by key and read back exactly, escapes included.
TEST(Safetensors, MetadataRoundTrips) {
  TempDir dir;
  std::string path = dir.path("metadata.safetensors");
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"base_model", "Qwen/Qwen2-0.5B"},
      {"json", R"({"r": 8, "alpha": "16"})"},
      {"odd", std::string("nul\0tab\t\xc3\xa9", 10)},
      {"", "empty key"}};
  {
    SafetensorsWriter writer(path);
    for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
    writer.commit();
  }
  SafetensorsReader reader(path);
  EXPECT_EQ(reader.metadata(), metadata);
  EXPECT_TRUE(reader.names().empty());
  std::string file = read_file(path);
  EXPECT_LT(file.find("\"base_model\""), file.find("\"format\""));
}

}  // namespace
}  // namespace ft::checkpoint
