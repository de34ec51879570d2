// HDF5 checkpoints: bit-exact round trips, the on-disk format other tools read, errors that name
// what is wrong, crash safety of the tmp + rename protocol, and checkpoint directory management.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "tests/support/expect_contains.h"
#include "tests/support/gradcheck.h"
#include "tests/support/round_trip_tensors.h"
#include "tests/support/temp_dir.h"

namespace ft::checkpoint {
namespace {

using ft::testing::error_message;
using ft::testing::random_bit_patterns;
using ft::testing::RoundTripTensors;
using ft::testing::TempDir;

namespace fs = std::filesystem;
using Names = std::vector<std::string>;

void touch(const std::string& path) {
  std::ofstream(path) << "x";
}

// Writes f32/f64/i32/bf16 tensors of several shapes, reads them back, compares the bytes.
TEST(Checkpoint, RoundTripIsBitExactForEveryDTypeAndShape) {
  TempDir dir;
  std::string path = dir.path("roundtrip.h5");
  RoundTripTensors tensors({{}, {1}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {0, 4}},
                           {{DType::f32, "model/f32."},
                            {DType::f64, "model/f64."},
                            {DType::i32, "optimizer/m/i32."},
                            {DType::bf16, "bf16."}});
  {
    CheckpointWriter writer(path);
    tensors.write_each(
        [&](const std::string& name, const Tensor& tensor) { writer.write_tensor(name, tensor); });
    writer.commit();
  }
  CheckpointReader reader(path);
  EXPECT_EQ(reader.path(), path);
  tensors.expect_each_read_back(
      [&](const std::string& name, const Tensor& dst) { reader.read_tensor(name, dst); });
  for (size_t i = 0; i < tensors.shapes().size(); ++i) {
    SCOPED_TRACE("shape " + tensors.shapes()[i].str());
    EXPECT_EQ(reader.tensor_shape(tensors.name(DType::f32, i)), tensors.shapes()[i]);
    EXPECT_EQ(reader.tensor_shape(tensors.name(DType::bf16, i)), tensors.shapes()[i]);
    EXPECT_EQ(reader.tensor_dtype(tensors.name(DType::f32, i)), "f32");
    EXPECT_EQ(reader.tensor_dtype(tensors.name(DType::f64, i)), "f64");
    EXPECT_EQ(reader.tensor_dtype(tensors.name(DType::i32, i)), "i32");
    EXPECT_EQ(reader.tensor_dtype(tensors.name(DType::bf16, i)), "bf16");
  }
}

TEST(Checkpoint, LargeTensorRoundTrip) {
  TempDir dir;
  std::string path = dir.path("large.h5");
  std::vector<float> values = random_bit_patterns<float, uint32_t>(4 << 20, 7);  // 16 MiB
  Shape shape{1024, 4096};
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/big", Tensor(values.data(), DType::f32, shape));
    writer.commit();
  }
  std::vector<float> back(values.size());
  CheckpointReader(path).read_tensor("model/big", Tensor(back.data(), DType::f32, shape));
  EXPECT_EQ(std::memcmp(back.data(), values.data(), values.size() * sizeof(float)), 0);
}

// The format promised to other tools (h5py, ft_convert): native IEEE/int types, bf16 as uint16
// tagged dtype="bf16", root attributes as variable-length UTF-8 strings, int64 and double.
TEST(Checkpoint, OnDiskFormatUsesStandardHdf5Types) {
  TempDir dir;
  std::string path = dir.path("format.h5");
  float f32[2] = {1, 2};
  bf16 b16[2] = {float_to_bf16(1), float_to_bf16(2)};
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/a.weight", Tensor(f32, DType::f32, {2}));
    writer.write_tensor("model/b.weight", Tensor(b16, DType::bf16, {2}));
    writer.set_attribute("config", std::string("seed: 1"));
    writer.set_attribute("step", int64_t{5});
    writer.commit();
  }
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  hid_t f32_set = H5Dopen2(file, "model/a.weight", H5P_DEFAULT);
  hid_t f32_type = H5Dget_type(f32_set);
  EXPECT_GT(H5Tequal(f32_type, H5T_IEEE_F32LE), 0);
  hid_t bf16_set = H5Dopen2(file, "model/b.weight", H5P_DEFAULT);
  hid_t bf16_type = H5Dget_type(bf16_set);
  EXPECT_GT(H5Tequal(bf16_type, H5T_STD_U16LE), 0);
  EXPECT_GT(H5Aexists(bf16_set, "dtype"), 0);
  EXPECT_EQ(H5Aexists(f32_set, "dtype"), 0);
  hid_t config = H5Aopen(file, "config", H5P_DEFAULT);
  hid_t config_type = H5Aget_type(config);
  EXPECT_EQ(H5Tget_class(config_type), H5T_STRING);
  EXPECT_GT(H5Tis_variable_str(config_type), 0);
  EXPECT_EQ(H5Tget_cset(config_type), H5T_CSET_UTF8);
  hid_t step = H5Aopen(file, "step", H5P_DEFAULT);
  hid_t step_type = H5Aget_type(step);
  EXPECT_GT(H5Tequal(step_type, H5T_STD_I64LE), 0);
  for (hid_t type : {f32_type, bf16_type, config_type, step_type}) H5Tclose(type);
  for (hid_t attribute : {config, step}) H5Aclose(attribute);
  for (hid_t dataset : {f32_set, bf16_set}) H5Dclose(dataset);
  H5Fclose(file);
}

TEST(Checkpoint, ReadConvertsBetweenFloatTypes) {
  TempDir dir;
  std::string path = dir.path("convert.h5");
  std::vector<float> f32 = {1.0f / 3, -2.5f, 1e-30f, 65504.0f};
  std::vector<double> f64 = {1.0 / 3, -2.5, 1e-300, 1e300};
  std::vector<bf16> b16 = {float_to_bf16(1.5f), float_to_bf16(-3.0f), float_to_bf16(0.1f),
                           float_to_bf16(1e20f)};
  std::vector<int32_t> i32 = {1, 2, 3, 4};
  {
    CheckpointWriter writer(path);
    writer.write_tensor("f32", Tensor(f32.data(), DType::f32, {2, 2}));
    writer.write_tensor("f64", Tensor(f64.data(), DType::f64, {2, 2}));
    writer.write_tensor("bf16", Tensor(b16.data(), DType::bf16, {2, 2}));
    writer.write_tensor("i32", Tensor(i32.data(), DType::i32, {2, 2}));
    writer.commit();
  }
  CheckpointReader reader(path);
  std::vector<double> as_f64(4);
  std::vector<float> as_f32(4);
  std::vector<bf16> as_bf16(4);
  reader.read_tensor("f32", Tensor(as_f64.data(), DType::f64, {2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(as_f64[i], static_cast<double>(f32[i]));
  reader.read_tensor("f64", Tensor(as_f32.data(), DType::f32, {2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(as_f32[i], static_cast<float>(f64[i]));
  reader.read_tensor("bf16", Tensor(as_f32.data(), DType::f32, {2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(as_f32[i], bf16_to_float(b16[i]));
  reader.read_tensor("f32", Tensor(as_bf16.data(), DType::bf16, {2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(as_bf16[i].bits, float_to_bf16(f32[i]).bits);

  std::string message = error_message([&] {
    reader.read_tensor("i32", Tensor(as_f32.data(), DType::f32, {2, 2}));
  });
  EXPECT_CONTAINS(message, "'i32' is i32, cannot read it into f32");
  std::vector<int32_t> into_i32(4);
  message = error_message([&] {
    reader.read_tensor("f32", Tensor(into_i32.data(), DType::i32, {2, 2}));
  });
  EXPECT_CONTAINS(message, "'f32' is f32, cannot read it into i32");
}

TEST(Checkpoint, AttributesOfEachTypeRoundTrip) {
  TempDir dir;
  std::string path = dir.path("attributes.h5");
  std::string long_text(300000, 'y');  // past HDF5's 64 KiB limit for compact attribute data
  long_text[1234] = '\n';
  {
    CheckpointWriter writer(path);
    writer.set_attribute("base_model", std::string("tiny-llama \xc3\xa9t\xc3\xa9"));
    writer.set_attribute("empty", std::string());
    writer.set_attribute("config", long_text);
    writer.set_attribute("step", int64_t{1234567890123});
    writer.set_attribute("min", std::numeric_limits<int64_t>::min());
    writer.set_attribute("lr", 0.1);
    writer.set_attribute("neg_inf", -std::numeric_limits<double>::infinity());
    writer.commit();
  }
  CheckpointReader reader(path);
  EXPECT_EQ(reader.string_attribute("base_model"), "tiny-llama \xc3\xa9t\xc3\xa9");
  EXPECT_EQ(reader.string_attribute("empty"), "");
  EXPECT_EQ(reader.string_attribute("config"), long_text);
  EXPECT_EQ(reader.int_attribute("step"), 1234567890123);
  EXPECT_EQ(reader.int_attribute("min"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(reader.double_attribute("lr"), 0.1);
  EXPECT_EQ(reader.double_attribute("neg_inf"), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(reader.has_attribute("step"));
  EXPECT_FALSE(reader.has_attribute("epoch"));

  std::string message = error_message([&] { reader.int_attribute("epoch"); });
  EXPECT_CONTAINS(message, "no attribute 'epoch'");
  EXPECT_CONTAINS(message, path);
  message = error_message([&] { reader.string_attribute("step"); });
  EXPECT_CONTAINS(message, "attribute 'step'");
  EXPECT_CONTAINS(message, "expected a string");
  EXPECT_CONTAINS(message, path);
  message = error_message([&] { reader.double_attribute("step"); });
  EXPECT_CONTAINS(message, "attribute 'step' holds a 64-bit signed integer, expected a float");
  message = error_message([&] { reader.int_attribute("lr"); });
  EXPECT_CONTAINS(message, "attribute 'lr' holds a 64-bit float, expected an integer");
}

TEST(Checkpoint, SettingAnAttributeOrTensorTwiceFails) {
  TempDir dir;
  CheckpointWriter writer(dir.path("twice.h5"));
  float value = 1;
  writer.set_attribute("step", int64_t{1});
  EXPECT_CONTAINS(error_message([&] { writer.set_attribute("step", int64_t{2}); }),
                  "attribute 'step' set twice");
  writer.write_tensor("model/w", Tensor(&value, DType::f32, {1}));
  EXPECT_CONTAINS(
      error_message([&] { writer.write_tensor("model/w", Tensor(&value, DType::f32, {1})); }),
      "tensor 'model/w' written twice");
  EXPECT_CONTAINS(
      error_message([&] { writer.write_tensor("model", Tensor(&value, DType::f32, {1})); }),
      "a group of that name exists");
  EXPECT_CONTAINS(
      error_message([&] { writer.write_tensor("model/w/below", Tensor(&value, DType::f32, {1})); }),
      "'model/w' is a tensor, not a group");
}

TEST(Checkpoint, WriterRejectsBadInput) {
  TempDir dir;
  CheckpointWriter writer(dir.path("bad.h5"));
  float value = 1;
  Tensor on_gpu(&value, DType::f32, {1}, Device::cuda);  // never dereferenced
  EXPECT_CONTAINS(error_message([&] { writer.write_tensor("model/w", on_gpu); }),
                  "'model/w' is f32 cuda (1); write_tensor takes CPU tensors");
  for (const char* name : {"", "/abs", "model//w", "model/", "model/./w"}) {
    EXPECT_CONTAINS(
        error_message([&] { writer.write_tensor(name, Tensor(&value, DType::f32, {1})); }),
        "invalid tensor name")
        << name;
  }
  writer.commit();
  EXPECT_CONTAINS(
      error_message([&] { writer.write_tensor("late", Tensor(&value, DType::f32, {1})); }),
      "already committed");
  EXPECT_CONTAINS(error_message([&] { writer.commit(); }), "already committed");
}

TEST(Checkpoint, TensorNamesListsDatasetsDirectlyUnderAGroupSorted) {
  TempDir dir;
  std::string path = dir.path("names.h5");
  float value = 0;
  Tensor scalar(&value, DType::f32, {1});
  {
    CheckpointWriter writer(path);
    for (const char* name :
         {"model/model.layers.1.mlp.up_proj.weight", "model/model.layers.0.mlp.up_proj.weight",
          "model/model.layers.0.self_attn.q_proj.weight", "model/lm_head.weight",
          "optimizer/m/model.embed_tokens.weight", "optimizer/v/model.embed_tokens.weight", "top"})
      writer.write_tensor(name, scalar);
    writer.commit();
  }
  CheckpointReader reader(path);
  EXPECT_EQ(reader.tensor_names("model"),
            (Names{"lm_head.weight", "model.layers.0.mlp.up_proj.weight",
                   "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"}));
  EXPECT_EQ(reader.tensor_names("optimizer"), Names{});  // only subgroups
  EXPECT_EQ(reader.tensor_names("optimizer/m"), Names{"model.embed_tokens.weight"});
  EXPECT_EQ(reader.tensor_names(""), Names{"top"});
  EXPECT_EQ(reader.tensor_names("/"), Names{"top"});
  EXPECT_EQ(reader.tensor_names("adapter"), Names{});
  EXPECT_CONTAINS(error_message([&] { reader.tensor_names("top"); }), "'top' is not a group");

  EXPECT_TRUE(reader.has_tensor("model/model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(reader.has_tensor("model"));  // a group
  EXPECT_FALSE(reader.has_tensor("model/model.layers.0.mlp"));
  EXPECT_FALSE(reader.has_tensor("missing/group/w"));
  EXPECT_FALSE(reader.has_tensor("top/below"));  // below a dataset
  EXPECT_FALSE(reader.has_tensor(""));
}

TEST(Checkpoint, ShapeMismatchErrorNamesTensorAndBothShapes) {
  TempDir dir;
  std::string path = dir.path("shapes.h5");
  std::vector<float> values(6, 1.0f);
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/model.norm.weight", Tensor(values.data(), DType::f32, {2, 3}));
    writer.commit();
  }
  CheckpointReader reader(path);
  std::string message = error_message([&] {
    reader.read_tensor("model/model.norm.weight", Tensor(values.data(), DType::f32, {3, 2}));
  });
  EXPECT_CONTAINS(message, "checkpoint " + path +
                               ": tensor 'model/model.norm.weight' has shape (2, 3), "
                               "expected (3, 2)");
  message = error_message([&] {
    reader.read_tensor("model/model.norm.weight", Tensor(values.data(), DType::f32, {6}));
  });
  EXPECT_CONTAINS(message, "has shape (2, 3), expected (6)");
}

TEST(Checkpoint, MissingTensorErrorNamesIt) {
  TempDir dir;
  std::string path = dir.path("missing.h5");
  float value = 0;
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/present", Tensor(&value, DType::f32, {1}));
    writer.commit();
  }
  CheckpointReader reader(path);
  const std::string expected = "checkpoint " + path + ": no tensor 'model/absent.weight'";
  EXPECT_CONTAINS(error_message([&] { reader.tensor_shape("model/absent.weight"); }), expected);
  EXPECT_CONTAINS(error_message([&] { reader.tensor_dtype("model/absent.weight"); }), expected);
  EXPECT_CONTAINS(error_message([&] {
                    reader.read_tensor("model/absent.weight", Tensor(&value, DType::f32, {1}));
                  }),
                  expected);
  EXPECT_CONTAINS(error_message([&] { reader.tensor_shape("model"); }),
                  "'model' is a group, not a tensor");
}

TEST(Checkpoint, UnreadableFilesGiveErrorsNamingThePath) {
  TempDir dir;
  std::string missing = dir.path("nothing_here.h5");
  EXPECT_CONTAINS(error_message([&] { CheckpointReader reader(missing); }),
                  "checkpoint " + missing + ": no such file");

  std::string text = dir.path("not_hdf5.h5");
  std::ofstream(text) << "this is a text file, not HDF5\n";
  EXPECT_CONTAINS(error_message([&] { CheckpointReader reader(text); }),
                  "checkpoint " + text + ": not an HDF5 file");

  // A checkpoint cut short (a killed writer without the tmp protocol) is also reported.
  std::string truncated = dir.path("truncated.h5");
  std::vector<float> values(1 << 16, 2.0f);
  {
    CheckpointWriter writer(truncated);
    writer.write_tensor("model/w", Tensor(values.data(), DType::f32, {1 << 16}));
    writer.commit();
  }
  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  std::string message = error_message([&] {
    CheckpointReader reader(truncated);
    reader.read_tensor("model/w", Tensor(values.data(), DType::f32, {1 << 16}));
  });
  EXPECT_CONTAINS(message, "checkpoint " + truncated);

  EXPECT_CONTAINS(error_message([&] { CheckpointReader reader(dir.path()); }), "is a directory");
}

TEST(Checkpoint, UncommittedWriterLeavesNoFileAndRemovesItsTmp) {
  TempDir dir;
  std::string path = dir.path("step_00000001.h5");
  float value = 3;
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&value, DType::f32, {1}));
    EXPECT_TRUE(fs::exists(path + ".tmp"));
    EXPECT_FALSE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Checkpoint, UncommittedWriterKeepsThePreviousCheckpoint) {
  TempDir dir;
  std::string path = dir.path("model.h5");
  float v1 = 1, v2 = 2;
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&v1, DType::f32, {1}));
    writer.set_attribute("step", int64_t{1});
    writer.commit();
  }
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&v2, DType::f32, {1}));
    writer.set_attribute("step", int64_t{2});
    EXPECT_EQ(CheckpointReader(path).int_attribute("step"), 1);  // untouched while writing
  }  // destroyed without commit, as if the run had failed
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  CheckpointReader reader(path);
  float back = 0;
  reader.read_tensor("model/w", Tensor(&back, DType::f32, {1}));
  EXPECT_EQ(back, v1);
  EXPECT_EQ(reader.int_attribute("step"), 1);
}

TEST(Checkpoint, CommitReplacesTheOldFileByRename) {
  TempDir dir;
  std::string path = dir.path("model.h5");
  float v1 = 1, v2 = 2;
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&v1, DType::f32, {1}));
    writer.write_tensor("model/only_in_v1", Tensor(&v1, DType::f32, {1}));
    writer.commit();
  }
  // A reader of v1 keeps seeing v1 after v2 is committed: the old file was replaced by a rename,
  // not truncated and rewritten in place.
  CheckpointReader old_reader(path);
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&v2, DType::f32, {1}));
    writer.commit();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  float back = 0;
  old_reader.read_tensor("model/w", Tensor(&back, DType::f32, {1}));
  EXPECT_EQ(back, v1);
  CheckpointReader new_reader(path);
  new_reader.read_tensor("model/w", Tensor(&back, DType::f32, {1}));
  EXPECT_EQ(back, v2);
  EXPECT_FALSE(new_reader.has_tensor("model/only_in_v1"));
}

TEST(Checkpoint, StaleTmpIsOverwrittenAndMissingDirectoryCreated) {
  TempDir dir;
  std::string path = dir.path("nested/run/model.h5");
  fs::create_directories(fs::path(dir.path()) / "nested/run");
  std::ofstream(path + ".tmp") << "garbage left by a killed writer";
  float value = 5;
  {
    CheckpointWriter writer(path);
    writer.write_tensor("model/w", Tensor(&value, DType::f32, {1}));
    writer.commit();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(CheckpointReader(path).tensor_shape("model/w"), Shape({1}));

  std::string fresh = dir.path("created/on/demand/model.h5");
  CheckpointWriter writer(fresh);
  writer.commit();
  EXPECT_TRUE(fs::exists(fresh));
}

TEST(Checkpoint, FailedWriterLeavesAnotherWritersTmpAlone) {
  TempDir dir;
  std::string path = dir.path("busy.h5");
  float value = 1;
  CheckpointWriter first(path);
  // HDF5 refuses to create a file this process already has open; that failure must not delete
  // the first writer's tmp.
  EXPECT_CONTAINS(error_message([&] { CheckpointWriter second(path); }), "H5Fcreate failed");
  first.write_tensor("model/w", Tensor(&value, DType::f32, {1}));
  first.commit();
  EXPECT_TRUE(CheckpointReader(path).has_tensor("model/w"));
}

TEST(Checkpoint, MovedWriterKeepsOwnershipOfItsTmp) {
  TempDir dir;
  std::string path = dir.path("moved.h5");
  float value = 1;
  CheckpointWriter first(path);
  CheckpointWriter second(std::move(first));
  second.write_tensor("model/w", Tensor(&value, DType::f32, {1}));
  EXPECT_CONTAINS(error_message([&] { first.commit(); }), "moved-from");
  second.commit();
  EXPECT_TRUE(CheckpointReader(path).has_tensor("model/w"));
}

TEST(CheckpointDir, StepCheckpointPathHasEightDigits) {
  EXPECT_EQ(step_checkpoint_path("/runs/a", 42), "/runs/a/step_00000042.h5");
  EXPECT_EQ(step_checkpoint_path("/runs/a/", 0), "/runs/a/step_00000000.h5");
  EXPECT_EQ(step_checkpoint_path("out", 123456789), "out/step_123456789.h5");
  EXPECT_CONTAINS(error_message([] { step_checkpoint_path("out", -1); }), "step must be");
}

TEST(CheckpointDir, LatestCheckpointPicksTheHighestStepAndIgnoresTmp) {
  TempDir dir;
  EXPECT_EQ(latest_checkpoint(dir.path()), std::nullopt);
  EXPECT_EQ(latest_checkpoint(dir.path("does_not_exist")), std::nullopt);
  std::string dir_path = dir.path();
  for (int64_t step : {2, 10, 3}) touch(step_checkpoint_path(dir_path, step));
  touch(dir.path("step_9.h5"));                         // compared as a number: 9 < 10
  touch(step_checkpoint_path(dir_path, 100) + ".tmp");  // an unfinished save
  touch(dir.path("step_00000500.h5.bak"));
  touch(dir.path("step_abc.h5"));
  touch(dir.path("other.h5"));
  fs::create_directories(fs::path(dir.path()) /
                         "step_00000999.h5");  // a directory, not a checkpoint
  EXPECT_EQ(latest_checkpoint(dir_path), step_checkpoint_path(dir_path, 10));

  touch(dir.path("not_a_dir"));
  EXPECT_CONTAINS(error_message([&] { latest_checkpoint(dir.path("not_a_dir")); }),
                  "not a directory");
}

TEST(CheckpointDir, RemoveOldCheckpointsKeepsTheNewestN) {
  TempDir dir;
  std::string dir_path = dir.path();
  for (int64_t step : {1, 2, 3, 10, 20}) touch(step_checkpoint_path(dir_path, step));
  touch(step_checkpoint_path(dir_path, 5) + ".tmp");
  touch(dir.path("notes.txt"));

  remove_old_checkpoints(dir_path, 2);
  Names remaining;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir.path()))
    remaining.push_back(entry.path().filename().string());
  std::sort(remaining.begin(), remaining.end());
  EXPECT_EQ(remaining,
            (Names{"notes.txt", "step_00000005.h5.tmp", "step_00000010.h5", "step_00000020.h5"}));

  remove_old_checkpoints(dir_path, 5);  // fewer than 5: nothing to delete
  EXPECT_TRUE(fs::exists(step_checkpoint_path(dir_path, 10)));
  remove_old_checkpoints(dir_path, 1);
  EXPECT_FALSE(fs::exists(step_checkpoint_path(dir_path, 10)));
  EXPECT_TRUE(fs::exists(step_checkpoint_path(dir_path, 20)));
  EXPECT_CONTAINS(error_message([&] { remove_old_checkpoints(dir_path, 0); }),
                  "keep_last must be >= 1");
  remove_old_checkpoints(dir.path("does_not_exist"), 1);  // nothing to do
}

}  // namespace
}  // namespace ft::checkpoint
