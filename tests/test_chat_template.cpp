// Built-in chat templates: parity of the rendered text with transformers' apply_chat_template
// (tools/chat_template_parity.py), and the token ids and loss masks of rendered conversations.
#include "runtime/data/chat_template.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "runtime/data/hf_tokenizer.h"
#include "runtime/error.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"

namespace ft::data {
namespace {

ChatMessage message(std::string role, std::string content, bool trained = false) {
  return ChatMessage{std::move(role), std::move(content), trained};
}

std::vector<int32_t> bytes(std::string_view text) {
  return ByteTokenizer().encode(text);
}

// Appends ids with one mask value, for building expected sequences.
struct ExpectedSequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;
  ExpectedSequence& add(const std::vector<int32_t>& ids, uint8_t mask = 0) {
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    loss_mask.insert(loss_mask.end(), ids.size(), mask);
    return *this;
  }
  ExpectedSequence& add(std::string_view text, uint8_t mask = 0) { return add(bytes(text), mask); }
};

// The error message of `body`, or "" when it does not throw ft::Error.
template <typename Body>
std::string error_of(Body&& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// Bytes 0..255, then the given special tokens from 256 on; the first special is EOS. Records the
// texts it is asked to encode.
class NamedSpecialsTokenizer : public Tokenizer {
 public:
  explicit NamedSpecialsTokenizer(std::vector<std::string> specials)
      : specials_(std::move(specials)) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    encoded_texts.emplace_back(text);
    return bytes(text);
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (int32_t id : ids) text += id < 256 ? std::string(1, char(id)) : specials_.at(id - 256);
    return text;
  }
  int32_t vocab_size() const override { return 256 + static_cast<int32_t>(specials_.size()); }
  int32_t eos_id() const override { return 256; }
  std::optional<int32_t> special_token(std::string_view name) const override {
    for (size_t i = 0; i < specials_.size(); ++i) {
      if (specials_[i] == name) return static_cast<int32_t>(256 + i);
    }
    return std::nullopt;
  }
  mutable std::vector<std::string> encoded_texts;

 private:
  std::vector<std::string> specials_;
};

// --- Parity with transformers ---------------------------------------------------------------

// Runs tools/chat_template_parity.py into `dir` with $FT_PYTHON (default python3), which must
// have transformers, and returns its cases.
nlohmann::json transformers_cases(const ft::testing::TempDir& dir) {
  const std::string script = std::string(FT_SOURCE_DIR) + "/tools/chat_template_parity.py";
  const ft::testing::CommandResult run =
      ft::testing::run_python(script, "--out '" + dir.path() + "'");
  if (run.status != 0) throw std::runtime_error(ft::testing::python_failure(script, run));
  return nlohmann::json::parse(ft::testing::read_file(dir.path("chat_template_cases.json")));
}

TEST(ChatTemplateParity, RendersWhatTransformersRenders) {
  ft::testing::TempDir dir;
  nlohmann::json result;
  try {
    result = transformers_cases(dir);
  } catch (const std::exception& error) {
    FAIL() << error.what();
  }
  const nlohmann::json& cases = result.at("cases");
  std::map<std::string, int> rendered_per_template;
  std::map<std::string, int> refused_per_template;
  for (const nlohmann::json& c : cases) {
    const std::string name = c.at("template");
    SCOPED_TRACE(fmt::format("template {}, conversation {}, add_generation_prompt {}", name,
                             c.at("conversation").get<std::string>(),
                             c.at("add_generation_prompt").get<bool>()));
    std::vector<ChatMessage> messages;
    std::vector<ChatMessage> untrained;
    for (const nlohmann::json& m : c.at("messages")) {
      const std::string role = m.at("role");
      messages.push_back(message(role, m.at("content"), role == "assistant"));
      untrained.push_back(message(role, m.at("content")));
    }
    ChatTemplateOptions options;
    options.add_generation_prompt = c.at("add_generation_prompt");
    if (name == "plain") options.eos_token = "<|endoftext|>";  // the script's plain tokenizer

    if (c.contains("error") || c.at("ft_refuses").get<bool>()) {
      EXPECT_THROW(render_chat(name, messages, options), Error);
      ++refused_per_template[name];
      continue;
    }
    const std::string expected = c.at("text");
    EXPECT_EQ(chat_text(render_chat(name, messages, options)), expected);
    // Which messages are trained changes the mask, never the text.
    EXPECT_EQ(chat_text(render_chat(name, untrained, options)), expected);
    ++rendered_per_template[name];
  }
  for (const std::string& name : chat_template_names()) {
    EXPECT_GE(rendered_per_template[name], 20) << name;
  }
  // The families that take alternating turns refuse assistant-first, two users in a row and a
  // later system message (llama2's odd-position one is ft's own refusal).
  EXPECT_EQ(refused_per_template["llama2"], 8);
  EXPECT_EQ(refused_per_template["mistral"], 8);
  EXPECT_EQ(refused_per_template["chatml"], 0);
}

// Token ids: ft's tokenize_chat with ft's HfTokenizer equals apply_chat_template(tokenize=True)
// with the same tokenizer.json (one encode of the whole rendered text: no extra "▁" at an answer,
// merges across the answer's start, [INST] as the added token it is). Prompt/completion: the ids
// of tokenizer(prompt + completion) + EOS, and the mask from its offsets.
TEST(ChatTemplateParity, TokenIdsEqualApplyChatTemplate) {
  ft::testing::TempDir dir;
  try {
    transformers_cases(dir);
  } catch (const std::exception& error) {
    FAIL() << error.what();
  }
  const nlohmann::json result =
      nlohmann::json::parse(ft::testing::read_file(dir.path("chat_token_cases.json")));
  std::map<std::string, std::unique_ptr<HfTokenizer>> tokenizers;
  std::map<std::string, int> chats_per_template, completions_per_template;
  for (const nlohmann::json& c : result.at("cases")) {
    const std::string name = c.at("template");
    if (!tokenizers.count(name)) {
      HfTokenizerOptions tokenizer_options;  // the template's EOS (cases of one template share it)
      if (c.contains("eos_token")) tokenizer_options.eos_token = c.at("eos_token");
      tokenizers[name] = HfTokenizer::load(dir.path(fmt::format("tokens/{}/tokenizer.json", name)),
                                           tokenizer_options);
    }
    const HfTokenizer& tokenizer = *tokenizers[name];
    const std::vector<int32_t> expected = c.at("ids");
    if (c.contains("prompt")) {
      SCOPED_TRACE(fmt::format("template {}, prompt {}", name, c.at("prompt").dump()));
      const nlohmann::json record = {{"prompt", c.at("prompt")},
                                     {"completion", c.at("completion")}};
      const std::string path = dir.write(
          fmt::format("{}_{}.jsonl", name, completions_per_template[name]), record.dump() + "\n");
      DataOptions options;
      options.seq_len = 1000;
      const std::vector<Sequence> sequences = load_dataset(path, options, tokenizer, nullptr);
      ASSERT_EQ(sequences.size(), 1u);
      EXPECT_EQ(sequences[0].tokens, expected);
      EXPECT_EQ(sequences[0].loss_mask, c.at("loss_mask").get<std::vector<uint8_t>>());
      ++completions_per_template[name];
      continue;
    }
    SCOPED_TRACE(fmt::format("template {}, conversation {}, add_generation_prompt {}", name,
                             c.at("conversation").get<std::string>(),
                             c.at("add_generation_prompt").get<bool>()));
    std::vector<ChatMessage> messages;
    for (const nlohmann::json& m : c.at("messages")) {
      const std::string role = m.at("role");
      messages.push_back(message(role, m.at("content"), role == "assistant"));
    }
    ChatTemplateOptions options;
    options.add_generation_prompt = c.at("add_generation_prompt");
    const Sequence sequence = tokenize_chat(name, messages, tokenizer, options);
    EXPECT_EQ(sequence.tokens, expected);
    // The trained tokens spell every answer (the mask comes from offsets into one encode).
    std::vector<int32_t> trained;
    for (size_t t = 0; t < sequence.tokens.size(); ++t) {
      if (sequence.loss_mask[t] == 1) trained.push_back(sequence.tokens[t]);
    }
    const std::string trained_text = tokenizer.decode(trained);
    for (const ChatMessage& m : messages) {
      if (m.role != "assistant") continue;
      const std::string answer(strip_unicode_whitespace(m.content));
      EXPECT_NE(trained_text.find(answer), std::string::npos) << answer << " in " << trained_text;
    }
    ++chats_per_template[name];
  }
  for (const std::string name : {"chatml", "llama3", "llama2", "mistral"}) {
    EXPECT_GE(chats_per_template[name], 20) << name;
    EXPECT_GE(completions_per_template[name], 7) << name;
  }
}

// --- Pieces, ids and masks ------------------------------------------------------------------

TEST(ChatTemplate, ChatmlIdsAndMaskByHand) {
  ByteTokenizer tokenizer;
  const std::vector<ChatMessage> messages = {message("system", "S"), message("user", "U"),
                                             message("assistant", "A", true), message("user", "V"),
                                             message("assistant", "B", false)};  // weight 0
  const Sequence sequence = tokenize_chat("chatml", messages, tokenizer);
  const int32_t start = ByteTokenizer::kImStart;
  const int32_t end = ByteTokenizer::kImEnd;
  ExpectedSequence expected;
  expected.add({start}).add("system\nS").add({end}).add("\n");
  expected.add({start}).add("user\nU").add({end}).add("\n");
  expected.add({start}).add("assistant\n").add("A", 1).add({end}, 1).add("\n");
  expected.add({start}).add("user\nV").add({end}).add("\n");
  expected.add({start}).add("assistant\nB").add({end}).add("\n");
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
}

TEST(ChatTemplate, ChatmlDefaultSystemPromptAndGenerationPrompt) {
  ByteTokenizer tokenizer;
  ChatTemplateOptions options;
  options.add_generation_prompt = true;
  const Sequence sequence = tokenize_chat(
      "chatml", {message("user", "hi"), message("assistant", "yo", true), message("user", "and?")},
      tokenizer, options);
  const int32_t start = ByteTokenizer::kImStart;
  const int32_t end = ByteTokenizer::kImEnd;
  ExpectedSequence expected;
  expected.add({start}).add("system\nYou are a helpful assistant.").add({end}).add("\n");
  expected.add({start}).add("user\nhi").add({end}).add("\n");
  expected.add({start}).add("assistant\n").add("yo", 1).add({end}, 1).add("\n");
  expected.add({start}).add("user\nand?").add({end}).add("\n");
  expected.add({start}).add("assistant\n");
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
}

TEST(ChatTemplate, ChatmlFirstTokenIsNeverTrained) {
  // An assistant-first conversation still starts with the default system turn, and loss_mask[0]
  // is 0 whatever the first piece is.
  const Sequence sequence =
      tokenize_chat("chatml", {message("assistant", "x", true)}, ByteTokenizer());
  ASSERT_FALSE(sequence.loss_mask.empty());
  EXPECT_EQ(sequence.loss_mask[0], 0);
  EXPECT_EQ(std::count(sequence.loss_mask.begin(), sequence.loss_mask.end(), 1), 2);  // x, im_end
}

TEST(ChatTemplate, SpecialTokenNamesInMessageTextStayText) {
  ByteTokenizer tokenizer;
  const Sequence sequence = tokenize_chat(
      "chatml", {message("user", "<|im_end|>"), message("assistant", "<|im_start|>", true)},
      tokenizer);
  const auto specials = std::count_if(sequence.tokens.begin(), sequence.tokens.end(),
                                      [](int32_t id) { return id >= 256; });
  EXPECT_EQ(specials, 6);  // im_start/im_end of the default system, user and assistant turns
}

TEST(ChatTemplate, Llama2BosPerTurnAndTrainedAnswerSpacing) {
  NamedSpecialsTokenizer tokenizer({"</s>", "<s>"});
  const int32_t eos = 256;
  const int32_t bos = 257;
  const Sequence sequence = tokenize_chat(
      "llama2",
      {message("system", "sys"), message("user", " q1 "), message("assistant", " a1\n", true),
       message("user", "q2"), message("assistant", "a2")},
      tokenizer);
  ExpectedSequence expected;
  expected.add({bos}).add("[INST] <<SYS>>\nsys\n<</SYS>>\n\n q1 [/INST]");
  expected.add(" a1 ", 1).add({eos}, 1);
  expected.add({bos}).add("[INST] q2 [/INST]").add(" a2 ").add({eos});
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
  // One encode call per stretch of text between tokens, whatever the mask does inside it.
  EXPECT_EQ(tokenizer.encoded_texts,
            (std::vector<std::string>{"[INST] <<SYS>>\nsys\n<</SYS>>\n\n q1 [/INST] a1 ",
                                      "[INST] q2 [/INST] a2 "}));
}

TEST(ChatTemplate, MistralBosOnceAndNoSpaceBeforeEos) {
  NamedSpecialsTokenizer tokenizer({"</s>", "<s>"});
  const Sequence sequence = tokenize_chat(
      "mistral",
      {message("system", "sys"), message("user", "q1"), message("assistant", "a1", true),
       message("user", "q2"), message("assistant", "a2", true)},
      tokenizer);
  ExpectedSequence expected;
  expected.add({257}).add(" [INST] sys\n\nq1 [/INST]").add(" a1", 1).add({256}, 1);
  expected.add(" [INST] q2 [/INST]").add(" a2", 1).add({256}, 1);
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
}

TEST(ChatTemplate, Llama3TrimsContentAndTrainsEotId) {
  NamedSpecialsTokenizer tokenizer(
      {"<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>"});
  const Sequence sequence = tokenize_chat(
      "llama3", {message("user", " q "), message("assistant", "\ta \n", true)}, tokenizer);
  ExpectedSequence expected;
  expected.add({257}).add({258}).add("user").add({259}).add("\n\nq").add({256});
  expected.add({258}).add("assistant").add({259}).add("\n\n").add("a", 1).add({256}, 1);
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
}

TEST(ChatTemplate, PlainTakesEosFromTheTokenizer) {
  const Sequence sequence = tokenize_chat(
      "plain", {message("user", "2+2="), message("assistant", "4", true)}, ByteTokenizer());
  ExpectedSequence expected;
  expected.add("2+2=").add("4", 1).add({ByteTokenizer::kEndOfText}, 1);
  EXPECT_EQ(sequence.tokens, expected.tokens);
  EXPECT_EQ(sequence.loss_mask, expected.loss_mask);
}

TEST(ChatTemplate, OverriddenBosAndEosTexts) {
  ChatTemplateOptions options;
  options.bos_token = "<|bos|>";
  options.eos_token = "<|eos|>";
  EXPECT_EQ(
      chat_text(render_chat("mistral", {message("user", "q"), message("assistant", "a")}, options)),
      "<|bos|> [INST] q [/INST] a<|eos|>");
  EXPECT_EQ(chat_text(render_chat("plain", {message("assistant", "a")}, options)), "a<|eos|>");
}

TEST(ChatTemplate, PiecesMarkSpecialTokens) {
  const std::vector<ChatPiece> pieces =
      render_chat("llama2", {message("user", "q"), message("assistant", "a", true)});
  ASSERT_EQ(pieces.size(), 6u);
  EXPECT_TRUE(pieces[0].special_token_text);
  EXPECT_EQ(pieces[0].text, "<s>");
  EXPECT_TRUE(pieces[1].markup);
  EXPECT_EQ(pieces[1].text, "[INST]");
  EXPECT_EQ(pieces[2].text, " q ");
  EXPECT_FALSE(pieces[2].special_token_text || pieces[2].markup || pieces[2].trained);
  EXPECT_TRUE(pieces[3].markup);
  EXPECT_EQ(pieces[3].text, "[/INST]");
  EXPECT_EQ(pieces[4].text, " a ");
  EXPECT_TRUE(pieces[4].trained);
  EXPECT_TRUE(pieces[5].special_token_text);
  EXPECT_TRUE(pieces[5].trained);
}

// Markup is the tokenizer's added token where it has one, text where not; the same name inside
// a message stays text.
TEST(ChatTemplate, MistralMarkupIsAnAddedTokenWhereTheTokenizerHasIt) {
  const std::vector<ChatMessage> messages = {message("user", "[INST]"),
                                             message("assistant", "a", true)};
  NamedSpecialsTokenizer plain({"</s>", "<s>"});
  ExpectedSequence as_text;
  as_text.add({257}).add(" [INST] [INST] [/INST]").add(" a", 1).add({256}, 1);
  EXPECT_EQ(tokenize_chat("mistral", messages, plain).tokens, as_text.tokens);
  NamedSpecialsTokenizer with_markup({"</s>", "<s>", "[INST]", "[/INST]"});
  ExpectedSequence as_tokens;
  as_tokens.add({257}).add(" ").add({258}).add(" [INST] ").add({259}).add(" a", 1).add({256}, 1);
  const Sequence sequence = tokenize_chat("mistral", messages, with_markup);
  EXPECT_EQ(sequence.tokens, as_tokens.tokens);
  EXPECT_EQ(sequence.loss_mask, as_tokens.loss_mask);
}

// --- Errors ---------------------------------------------------------------------------------

TEST(ChatTemplateErrors, MissingSpecialTokenNamesTemplateAndToken) {
  const std::string error = error_of([] {
    tokenize_chat("llama3", {message("user", "q"), message("assistant", "a")}, ByteTokenizer());
  });
  EXPECT_NE(error.find("'llama3'"), std::string::npos) << error;
  EXPECT_NE(error.find("'<|begin_of_text|>'"), std::string::npos) << error;
}

TEST(ChatTemplateErrors, UnknownTemplateListsTheKnownOnes) {
  const std::string error = error_of([] { render_chat("vicuna", {message("user", "q")}); });
  EXPECT_NE(error.find("'vicuna'"), std::string::npos) << error;
  EXPECT_NE(error.find("chatml, llama3, llama2, mistral, plain"), std::string::npos) << error;
}

TEST(ChatTemplateErrors, RefusedConversations) {
  EXPECT_NE(error_of([] { render_chat("chatml", {}); }).find("no messages"), std::string::npos);
  EXPECT_NE(error_of([] {
              render_chat("chatml", {message("user", "q", true)});
            }).find("message 1 (user) is marked trained"),
            std::string::npos);
  const std::string alternation = error_of([] {
    render_chat("llama2", {message("system", "s"), message("user", "a"), message("user", "b")});
  });
  EXPECT_NE(alternation.find("message 3 is 'user' where 'assistant' was expected"),
            std::string::npos)
      << alternation;
  const std::string late_system = error_of([] {
    render_chat("llama2", {message("user", "a"), message("system", "s"), message("user", "b")});
  });
  EXPECT_NE(late_system.find("message 2 is a system message"), std::string::npos) << late_system;
  EXPECT_NE(error_of([] { render_chat("plain", {message("assistant", "a")}); }).find("eos_token"),
            std::string::npos);
}

TEST(ChatTemplateErrors, PlainRefusesAnEosThatIsNotASpecialToken) {
  // decode(eos_id) of this tokenizer is a special token's text, but of another id.
  class WrongEosTokenizer : public NamedSpecialsTokenizer {
   public:
    WrongEosTokenizer() : NamedSpecialsTokenizer({"<eos>", "<other>"}) {}
    int32_t eos_id() const override { return 65; }  // 'A'
  };
  const std::string error =
      error_of([] { tokenize_chat("plain", {message("assistant", "a")}, WrongEosTokenizer()); });
  EXPECT_NE(error.find("EOS (id 65) decodes to 'A'"), std::string::npos) << error;
}

// --- Python's str.strip() -------------------------------------------------------------------

TEST(StripUnicodeWhitespace, MatchesPythonIsspace) {
  EXPECT_EQ(strip_unicode_whitespace(" \t\n\v\f\r x y \r\n"), "x y");
  EXPECT_EQ(strip_unicode_whitespace("\u3000\u00a0\u2028x\u2003\u205f\u0085\x1c"), "x");
  EXPECT_EQ(strip_unicode_whitespace("   "), "");
  EXPECT_EQ(strip_unicode_whitespace(""), "");
  // U+200B (zero-width space) and U+FEFF are not whitespace to Python.
  EXPECT_EQ(strip_unicode_whitespace("\u200bx\ufeff"), "\u200bx\ufeff");
  // Invalid or cut UTF-8 at the edges is kept as it is.
  EXPECT_EQ(strip_unicode_whitespace(" \xff x \xe3\x80 "), "\xff x \xe3\x80");
  EXPECT_EQ(strip_unicode_whitespace("\x80\x80\x80 "), "\x80\x80\x80");
  EXPECT_EQ(strip_unicode_whitespace("\xc0\xa0x\xc0\xa0"), "\xc0\xa0x\xc0\xa0");  // overlong space
  EXPECT_EQ(strip_unicode_whitespace("héllo 世界"), "héllo 世界");
}

}  // namespace
}  // namespace ft::data
