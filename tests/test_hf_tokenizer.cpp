// HfTokenizer (tokenizer.json reader): parity with the `tokenizers` library on tokenizers that
// tools/tokenizer_parity.py trains, hand-worked BPE cases, and the errors on bad files.
#include "runtime/data/hf_tokenizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/error.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"

namespace ft::data {
namespace {

const std::string kFixtures = std::string(FT_TEST_DATA_DIR) + "/tokenizer/";

// ---- Parity with the tokenizers library ------------------------------------------------------

const std::vector<std::string> kKinds = {
    "gpt2", "bytelevel_prefix_space", "llama3", "qwen2", "llama2", "mistral", "metaspace_unk"};

// Runs tools/tokenizer_parity.py once per test process with $FT_PYTHON (default python3).
class TokenizersLibraryParity : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    output_dir_ = new ft::testing::TempDir();
    const std::string script = std::string(FT_SOURCE_DIR) + "/tools/tokenizer_parity.py";
    const ft::testing::CommandResult run =
        ft::testing::run_python(script, "--out '" + output_dir_->path() + "'");
    if (run.status != 0) script_error_ = new std::string(ft::testing::python_failure(script, run));
  }
  static void TearDownTestSuite() {
    delete output_dir_;
    delete script_error_;
    output_dir_ = nullptr;
    script_error_ = nullptr;
  }
  void SetUp() override {
    if (script_error_ != nullptr) GTEST_FAIL() << *script_error_;
    const std::string folder = output_dir_->path(GetParam());
    tokenizer_ = HfTokenizer::load(folder + "/tokenizer.json");
    expected_ = nlohmann::json::parse(ft::testing::read_file(folder + "/expected.json"));
  }

  static ft::testing::TempDir* output_dir_;
  static std::string* script_error_;
  std::unique_ptr<HfTokenizer> tokenizer_;
  nlohmann::json expected_;
};
ft::testing::TempDir* TokenizersLibraryParity::output_dir_ = nullptr;
std::string* TokenizersLibraryParity::script_error_ = nullptr;

std::string shown(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

TEST_P(TokenizersLibraryParity, EncodeGivesTheSameIds) {
  SCOPED_TRACE("tokenizers " + expected_.at("tokenizers_version").get<std::string>());
  EXPECT_EQ(tokenizer_->vocab_size(), expected_.at("vocab_size").get<int32_t>());
  int mismatches = 0;
  for (const nlohmann::json& c : expected_.at("cases")) {
    const std::string text = c.at("text");
    const auto with_special = c.at("ids_with_special").get<std::vector<int32_t>>();
    const auto plain = c.at("ids_plain").get<std::vector<int32_t>>();
    const std::vector<int32_t> ours_with_special = tokenizer_->encode_with_special_tokens(text);
    const std::vector<int32_t> ours_plain = tokenizer_->encode(text);
    EXPECT_EQ(ours_with_special, with_special)
        << "encode_with_special_tokens(" << shown(text) << ")";
    EXPECT_EQ(ours_plain, plain) << "encode(" << shown(text) << ")";
    mismatches += (ours_with_special != with_special) + (ours_plain != plain);
    if (mismatches > 10) FAIL() << "stopping after 10 mismatches";
  }
}

TEST_P(TokenizersLibraryParity, DecodeGivesTheSameText) {
  SCOPED_TRACE("tokenizers " + expected_.at("tokenizers_version").get<std::string>());
  int mismatches = 0;
  const auto check = [&](const std::vector<int32_t>& ids, const std::string& text) {
    const std::string ours = tokenizer_->decode(ids);
    EXPECT_EQ(shown(ours), shown(text)) << "decode(" << fmt::format("{}", ids) << ")";
    mismatches += ours != text;
  };
  for (const nlohmann::json& c : expected_.at("cases")) {
    check(c.at("ids_with_special"), c.at("decoded_with_special"));
    check(c.at("ids_plain"), c.at("decoded_plain"));
    if (mismatches > 10) FAIL() << "stopping after 10 mismatches";
  }
  for (const nlohmann::json& d : expected_.at("decodes")) {
    check(d.at("ids"), d.at("text"));
    if (mismatches > 10) FAIL() << "stopping after 10 mismatches";
  }
}

// encode_with_offsets: encode's ids; each token's bytes in order, every byte of the text in
// exactly one token (an inserted "▁" in none). Exceptions: qwen2 normalizes NFC, and tokens that
// split a character NFC changed share its bytes; metaspace_unk fuses unknown characters into one
// <unk>, after which the rest of a stretch goes to each remaining token.
TEST_P(TokenizersLibraryParity, OffsetsCoverTheTextInOrder) {
  const std::string kind = GetParam();
  const bool exact = kind != "metaspace_unk" && kind != "qwen2";
  int mismatches = 0;
  for (const nlohmann::json& c : expected_.at("cases")) {
    const std::string text = c.at("text");
    const EncodedText encoded = tokenizer_->encode_with_offsets(text);
    ASSERT_EQ(encoded.ids, c.at("ids_plain").get<std::vector<int32_t>>()) << shown(text);
    ASSERT_EQ(encoded.offsets.size(), encoded.ids.size());
    std::vector<int> covered(text.size(), 0);
    size_t previous_begin = 0;
    bool ok = true;
    for (const auto& [begin, end] : encoded.offsets) {
      ok &= begin >= previous_begin && begin <= end && end <= text.size();
      previous_begin = begin;
      for (size_t i = begin; i < std::min(end, text.size()); ++i) ++covered[i];
    }
    if (exact) ok &= std::all_of(covered.begin(), covered.end(), [](int n) { return n == 1; });
    if (kind == "qwen2") {
      ok &= std::all_of(covered.begin(), covered.end(), [](int n) { return n >= 1; });
    }
    EXPECT_TRUE(ok) << shown(text) << " offsets " << fmt::format("{}", encoded.offsets);
    mismatches += !ok;
    if (mismatches > 10) FAIL() << "stopping after 10 mismatches";
  }
}

TEST_P(TokenizersLibraryParity, SpecialTokenIdsMatch) {
  for (const auto& [name, id] : expected_.at("special_tokens").items()) {
    EXPECT_EQ(tokenizer_->special_token(name), std::optional<int32_t>(id.get<int32_t>())) << name;
  }
  EXPECT_EQ(tokenizer_->special_token("<|not_a_token|>"), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Kinds, TokenizersLibraryParity, ::testing::ValuesIn(kKinds),
                         [](const auto& info) { return info.param; });

// ---- Hand-worked BPE behaviour -------------------------------------------------------------

std::unique_ptr<HfTokenizer> parse(const std::string& json) {
  return HfTokenizer::parse(json, "inline.json");
}

// A tokenizer.json with a BPE model of `model_fields` and the top-level fields `top_fields`.
std::string bpe_json(const std::string& model_fields, const std::string& top_fields = "") {
  nlohmann::json document = {{"added_tokens", nlohmann::json::array()},
                             {"normalizer", nullptr},
                             {"pre_tokenizer", nullptr},
                             {"decoder", nullptr}};
  document.update(nlohmann::json::parse("{" + top_fields + "}"));
  document["model"] =
      nlohmann::json::parse(R"({"type": "BPE", "dropout": null, )" + model_fields + "}");
  return document.dump();
}

TEST(HfTokenizerBpe, MergesLowestRankFirst) {
  const std::string vocab = R"("vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}, )";
  EXPECT_EQ(parse(bpe_json(vocab + R"("merges": ["b c", "a b"])"))->encode("abc"),
            (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(
      parse(bpe_json(vocab + R"("merges": [["a", "b"], ["b", "c"], ["ab", "c"]])"))->encode("abc"),
      (std::vector<int32_t>{5}));
}

TEST(HfTokenizerBpe, LongAndShortWordsMergeLeftmostFirst) {
  // Words over 48 symbols take the priority-queue path, shorter ones the scanning path.
  auto tokenizer = parse(bpe_json(R"("vocab": {"a": 0, "aa": 1, "aaaa": 2},
                                     "merges": ["a a", "aa aa"])"));
  EXPECT_EQ(tokenizer->encode(std::string(11, 'a')), (std::vector<int32_t>{2, 2, 1, 0}));
  std::vector<int32_t> long_word(25, 2);
  EXPECT_EQ(tokenizer->encode(std::string(100, 'a')), long_word);
  long_word.push_back(0);
  EXPECT_EQ(tokenizer->encode(std::string(101, 'a')), long_word);
}

TEST(HfTokenizerBpe, ByteFallbackSpellsUnknownCharactersAsBytes) {
  auto tokenizer = parse(bpe_json(
      R"("unk_token": "<unk>", "byte_fallback": true,
         "vocab": {"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "a": 3}, "merges": [])",
      R"("decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                                                      {"type": "Fuse"}]})"));
  EXPECT_EQ(tokenizer->encode("a\xC3\xA9"), (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(tokenizer->decode({3, 1, 2}), "a\xC3\xA9");
  // "ü" has no <0xBC> token: it becomes <unk>.
  EXPECT_EQ(tokenizer->encode("\xC3\xBC"
                              "a"),
            (std::vector<int32_t>{0, 3}));
  // A byte run that is not UTF-8 decodes to one U+FFFD per byte.
  EXPECT_EQ(tokenizer->decode({1, 3}),
            "\xEF\xBF\xBD"
            "a");
}

TEST(HfTokenizerBpe, UnknownCharactersFuseOnlyWithFuseUnk) {
  const std::string vocab = R"("unk_token": "<unk>", "vocab": {"<unk>": 0, "a": 1}, "merges": [])";
  EXPECT_EQ(parse(bpe_json(R"("fuse_unk": true, )" + vocab))->encode("xy a"),
            (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(parse(bpe_json(R"("fuse_unk": false, )" + vocab))->encode("xy a"),
            (std::vector<int32_t>{0, 0, 0, 1}));
  // Without an unknown token, unknown characters are dropped (as tokenizers does).
  EXPECT_EQ(parse(bpe_json(R"("vocab": {"a": 0}, "merges": [])"))->encode("xay"),
            (std::vector<int32_t>{0}));
}

TEST(HfTokenizerBpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  const std::string model = R"("vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "abc": 4},
                               "merges": ["b c"])";
  EXPECT_EQ(parse(bpe_json(model))->encode("abc"), (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(parse(bpe_json(R"("ignore_merges": true, )" + model))->encode("abc"),
            (std::vector<int32_t>{4}));
}

TEST(HfTokenizerBpe, MetaspaceWordsSplitOnlyWhereNoMergeCrosses) {
  // Without a pre-tokenizer a whole text is one word. ft cuts it before each "▁" when no merge
  // joins a character to a following "▁"; here one merge does, so the word must stay whole.
  const std::string vocab =
      R"("vocab": {"a": 0, "\u2581": 1, "b": 2, "\u2581b": 3, "a\u2581b": 4, "ba": 5}, )";
  EXPECT_EQ(
      parse(bpe_json(vocab + R"("merges": ["\u2581 b", "a \u2581b"])"))->encode("a\u2581b\u2581b"),
      (std::vector<int32_t>{4, 3}));
  EXPECT_EQ(
      parse(bpe_json(vocab + R"("merges": ["\u2581 b", "b a"])"))->encode("a\u2581ba\u2581\u2581b"),
      (std::vector<int32_t>{0, 3, 0, 1, 3}));
}

const std::string kWithSpecials = bpe_json(
    R"("vocab": {"<": 0, "|": 1, "e": 2, "n": 3, "d": 4, ">": 5, " ": 6, "x": 7}, "merges": [])",
    R"("added_tokens": [{"id": 8, "content": "<|end|>", "special": true, "normalized": false,
                         "lstrip": false, "rstrip": false, "single_word": false}])");

TEST(HfTokenizerSpecialTokens, EncodeTreatsSpecialTokenNamesAsText) {
  auto tokenizer = parse(kWithSpecials);
  EXPECT_EQ(tokenizer->encode("x<|end|>"), (std::vector<int32_t>{7, 0, 1, 2, 3, 4, 1, 5}));
  EXPECT_EQ(tokenizer->encode_with_special_tokens("x<|end|>"), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(tokenizer->special_token("<|end|>"), 8);
  EXPECT_EQ(tokenizer->decode({7, 8}), "x <|end|>");  // no decoder: tokens joined by spaces
  EXPECT_EQ(tokenizer->vocab_size(), 9);
}

TEST(HfTokenizerSpecialTokens, EosComesFromOptionsConfigOrKnownNames) {
  ft::testing::TempDir dir;
  const std::string path = dir.write("tokenizer.json", kWithSpecials);
  EXPECT_THROW(HfTokenizer::load(path)->eos_id(), Error);
  HfTokenizerOptions options;
  options.eos_token = "<|end|>";
  EXPECT_EQ(HfTokenizer::load(path, options)->eos_id(), 8);
  options.eos_token = "<|missing|>";
  EXPECT_THROW(HfTokenizer::load(path, options), Error);
  dir.write("tokenizer_config.json", R"({"eos_token": {"content": "<|end|>"}})");
  EXPECT_EQ(HfTokenizer::load(path)->eos_id(), 8);
  EXPECT_EQ(parse(bpe_json(R"("vocab": {"a": 0}, "merges": [])",
                           R"("added_tokens": [{"id": 1, "content": "</s>", "special": true}])"))
                ->eos_id(),
            1);
}

TEST(HfTokenizerSpecialTokens, InvalidUtf8AndUnknownIdsAreRefused) {
  auto tokenizer = parse(kWithSpecials);
  try {
    tokenizer->encode("xx\xC3x");
    FAIL() << "invalid UTF-8 was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("byte 2"), std::string::npos) << error.what();
  }
  EXPECT_THROW(tokenizer->decode({7, 42}), Error);
}

TEST(HfTokenizerSpecialTokens, ConcurrentEncodesAgree) {
  ft::testing::TempDir dir;
  auto tokenizer = parse(bpe_json(R"("vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"])",
                                  R"("pre_tokenizer": {"type": "ByteLevel",
                                     "add_prefix_space": false, "use_regex": true})"));
  std::string text;
  for (int i = 0; i < 2000; ++i) text += i % 3 ? "ab " : "ba ";
  const std::vector<int32_t> expected = tokenizer->encode(text);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (int repeat = 0; repeat < 20; ++repeat) result = tokenizer->encode(text);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// ---- Errors on bad files -------------------------------------------------------------------

// Loads a fixture and returns the error message (empty when it loaded).
std::string load_error(const std::string& name) {
  try {
    HfTokenizer::load(kFixtures + name);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

void expect_mentions(const std::string& message, const std::vector<std::string>& parts) {
  ASSERT_FALSE(message.empty()) << "the file loaded without an error";
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

TEST(HfTokenizerErrors, WordPieceModelIsRefusedByName) {
  expect_mentions(load_error("wordpiece_model.json"),
                  {"wordpiece_model.json", "model.type", "WordPiece", "BPE"});
}

TEST(HfTokenizerErrors, UnigramModelIsRefusedByName) {
  expect_mentions(load_error("unigram_model.json"),
                  {"unigram_model.json", "model.type", "Unigram"});
}

TEST(HfTokenizerErrors, BpeDropoutIsRefused) {
  expect_mentions(load_error("bpe_dropout.json"), {"bpe_dropout.json", "model.dropout", "null"});
}

TEST(HfTokenizerErrors, MergeOfTokenMissingFromVocabNamesTheMerge) {
  expect_mentions(load_error("merge_of_unknown_token.json"),
                  {"merge_of_unknown_token.json", "model.merges[1]", "\"c\""});
}

TEST(HfTokenizerErrors, MergeStringWithoutSpaceNamesTheMerge) {
  expect_mentions(load_error("merge_without_space.json"), {"model.merges[0]", "\"ab\""});
}

TEST(HfTokenizerErrors, MissingMergesNamesTheField) {
  expect_mentions(load_error("missing_merges.json"), {"model.merges", "missing"});
}

TEST(HfTokenizerErrors, NegativeVocabIdNamesTheToken) {
  expect_mentions(load_error("negative_vocab_id.json"), {"model.vocab", "\"b\"", "-3"});
}

TEST(HfTokenizerErrors, UnsupportedPreTokenizerInsideSequenceNamesItsPath) {
  expect_mentions(load_error("unsupported_pre_tokenizer.json"),
                  {"pre_tokenizer.pretokenizers[1].type", "Whitespace"});
}

TEST(HfTokenizerErrors, UnsupportedNormalizerIsNamed) {
  expect_mentions(load_error("unsupported_normalizer.json"), {"normalizer.type", "Lowercase"});
}

TEST(HfTokenizerErrors, SplitRegexThatDoesNotCompileNamesThePattern) {
  expect_mentions(load_error("bad_split_regex.json"),
                  {"bad_split_regex.json", "pre_tokenizer.pattern.Regex", "does not compile"});
}

TEST(HfTokenizerErrors, FileThatIsNotJsonIsNamed) {
  expect_mentions(load_error("not_json.json"), {"not_json.json", "not valid JSON"});
}

TEST(HfTokenizerErrors, MissingFileIsNamed) {
  expect_mentions(load_error("no_such_file.json"), {"no_such_file.json", "no such tokenizer file"});
}

}  // namespace
}  // namespace ft::data
