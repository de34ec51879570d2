// Reading Hugging Face config.json files into ModelConfig.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/model_config.h"
#include "models/param_layout.h"

namespace ft {
namespace {

class HfConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ft_hf_config_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text) {
    std::string path = (dir_ / "config.json").string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(HfConfig, Llama3WithGqaAndRopeScaling) {
  ModelConfig c = model_config_from_hf(write(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "hidden_act": "silu"})"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.norm, NormKind::rmsnorm);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  // Llama-3.2-1B: about 1.24 billion parameters, 0.97 billion outside the embedding.
  EXPECT_NEAR(static_cast<double>(c.non_embedding_parameters()), 973.1e6, 1e6);
}

TEST_F(HfConfig, Qwen2HasQkvBias) {
  ModelConfig c = model_config_from_hf(write(R"({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true})"));
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 64);
  bool has_bias = false;
  for (const ParamSpec& spec : transformer_param_specs(c))
    has_bias |= spec.name == "model.layers.3.self_attn.k_proj.bias";
  EXPECT_TRUE(has_bias);
}

TEST_F(HfConfig, MistralAndGpt2) {
  ModelConfig mistral = model_config_from_hf(write(R"({
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32000,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "tie_word_embeddings": false,
    "sliding_window": 4096})"));
  EXPECT_EQ(mistral.num_kv_heads, 8);
  EXPECT_EQ(mistral.sliding_window, 4096);
  EXPECT_FALSE(mistral.tied_embeddings);
  ModelConfig gpt2 = model_config_from_hf(write(R"({
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257,
    "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
    "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new"})"));
  EXPECT_EQ(gpt2.norm, NormKind::layernorm);
  EXPECT_EQ(gpt2.positions, PositionKind::learned);
  EXPECT_EQ(gpt2.intermediate_size, 3072);
  EXPECT_TRUE(gpt2.tied_embeddings);
  // GPT-2 small: 124.4 million parameters with the position table, 85 million outside embeddings.
  EXPECT_NEAR(static_cast<double>(gpt2.non_embedding_parameters()), 85.06e6, 0.1e6);
}

TEST_F(HfConfig, UnsupportedModelTypeIsNamed) {
  std::string path = write(R"({"model_type": "falcon", "vocab_size": 10})");
  try {
    model_config_from_hf(path);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("falcon"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

TEST_F(HfConfig, WrongArchitectureAndMissingFieldAreNamed) {
  std::string path = write(R"({"architectures": ["LlamaForSequenceClassification"],
    "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
    "num_hidden_layers": 1, "num_attention_heads": 2})");
  try {
    model_config_from_hf(path);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("LlamaForSequenceClassification"), std::string::npos);
  }
  path = write(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8})");
  try {
    model_config_from_hf(path);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("num_hidden_layers"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(model_config_from_hf((dir_ / "absent.json").string()), Error);
}

TEST_F(HfConfig, BadValuesGiveErrorsNotCrashes) {
  auto expect_error = [&](const std::string& json, const std::string& part) {
    std::string path = write(json);
    try {
      model_config_from_hf(path);
      ADD_FAILURE() << "expected an error for " << json;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
    }
  };
  expect_error(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 1,
                   "n_head": 0, "n_positions": 16})",
               "n_head");
  expect_error(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 10, "n_layer": 1,
                   "n_head": 4, "n_positions": 16})",
               "n_head");
  expect_error(R"({"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 1,
                   "n_head": 2, "n_positions": 16, "scale_attn_by_inverse_layer_idx": true})",
               "scale_attn_by_inverse_layer_idx");
  expect_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
                   "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 0})",
               "num_attention_heads");
  expect_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
                   "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "rope_scaling": {"rope_type": 3}})",
               "rope_type");
  expect_error(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
                   "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "attention_bias": true})",
               "attention_bias");
}

}  // namespace
}  // namespace ft
