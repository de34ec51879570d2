// Datasets: a file on disk -> training sequences of at most seq_len + 1 tokens with a loss mask.
// Formats:
//   chat               OpenAI chat JSONL: {"messages": [{"role": .., "content": ..}, ...]}, an
//                      optional "weight": 0|1 on assistant messages; rendered with a chat template.
//   prompt_completion  JSONL {"prompt": .., "completion": ..}: encode(prompt + completion) + EOS
//                      (one encode call, as Hugging Face's tokenizer(prompt + completion)), the
//                      loss on the tokens that overlap the completion's bytes, and EOS.
//   text               one token stream (the file + EOS) cut into overlapping windows.
// "auto" reads a .jsonl file (any letter case) by its first JSON object: "messages" is chat,
// "prompt" and "completion" is prompt_completion; any other file is text (a .json file that starts
// with a JSON object or array gets a report warning: it is probably records, read as plain text).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/tokenizer.h"

namespace ft::data {

// One training sequence of at most seq_len + 1 tokens. loss_mask[t] == 1 when tokens[t] is
// trained as the prediction made at position t - 1 (loss_mask[0] is always 0).
struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;
  // The example's token count before truncation (0: tokens.size()); reports recount from it.
  int64_t example_tokens = 0;
  bool truncated = false;  // cut to seq_len + 1 tokens by data.too_long = truncate
};

// Below this many examples a training file gets a warning: too few to learn from.
constexpr int64_t kFewExamples = 10;

struct DatasetReport {
  std::string path;
  std::string format;    // the resolved format: "chat", "prompt_completion" or "text"
  int64_t examples = 0;  // JSONL: non-blank lines; text: 1 (the whole file)
  int64_t sequences = 0;
  int64_t min_tokens = 0;  // tokens per example, before truncation
  int64_t max_tokens = 0;
  double mean_tokens = 0;
  int64_t truncated = 0;       // examples longer than seq_len + 1 that were cut
  int64_t dropped = 0;         // examples longer than seq_len + 1 that were left out
  int64_t trained_tokens = 0;  // sum of loss_mask over all sequences
  // Sequences whose loss_mask is all zero, e.g. truncation cut away the whole assistant answer.
  int64_t untrained_sequences = 0;
  std::vector<std::string> warnings;  // e.g. fewer than kFewExamples examples
};

// How a file becomes sequences (the data section of the run config).
struct DataOptions {
  std::string format = "auto";           // auto | chat | prompt_completion | text
  std::string chat_template = "chatml";  // chatml | llama3 | llama2 | mistral | plain
  // chatml only: add Qwen2-Instruct's default system message to a conversation without one, as
  // the model's own template does (data.chatml_default_system).
  bool chatml_default_system = false;
  std::string train_on = "assistant";  // assistant (completion) tokens only | all
  int seq_len = 256;
  std::string too_long = "truncate";  // truncate | drop
};

// The format load_dataset reads `path` as: "chat", "prompt_completion" or "text". `contents` is
// the file's text (auto looks at the first line of a .jsonl file that is a JSON object). Throws
// ft::Error naming the value for an unknown format, and naming the file and line for a .jsonl
// file whose first JSON object is neither kind.
std::string resolve_format(const std::string& format, const std::string& path,
                           std::string_view contents);

// Throws ft::Error on bad JSONL lines after checking every line: one message with a
// "path:line: problem" line for each of the first 20 bad lines (invalid JSON, missing or unknown
// role, empty content, a conversation the chat template refuses), "... and N more problems" past
// those, and "path: B bad lines out of L; nothing was trained". Also throws on a missing file or
// a path that is not a regular file, on bad options (naming the data.* field), and on a dataset
// with no sequences or no trained tokens. `report` may be null.
std::vector<Sequence> load_dataset(const std::string& path, const DataOptions& options,
                                   const Tokenizer& tokenizer, DatasetReport* report);

// load_dataset with ChatML without a default system message (ft's byte-level ChatML).
std::vector<Sequence> load_sequences(const std::string& path, const std::string& format,
                                     const Tokenizer& tokenizer, int seq_len,
                                     const std::string& too_long, DatasetReport* report);

// Moves round(fraction * n) of the n sequences into `valid`, chosen by `seed` alone (the same
// split for any number of ranks and every run with that seed); the others keep their order.
// Recomputes both reports' counts from their own sequences: examples, tokens per example (before
// truncation), truncated; the examples dropped as too long belong to neither part and stay on
// `train_report`. Throws ft::Error naming data.valid_split unless 0 < fraction < 1 and both parts
// are non-empty.
void split_validation(std::vector<Sequence>& train, double fraction, uint64_t seed,
                      std::vector<Sequence>& valid, DatasetReport& train_report,
                      DatasetReport& valid_report);

// One or two human-readable lines describing the report (warnings on lines of their own).
std::string format_report(const DatasetReport& report);

// "N trained tokens per epoch x E epochs = M tokens to train" for `epochs` passes (fractional
// when the run is set by steps).
std::string format_token_plan(const DatasetReport& report, double epochs);

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  bool trained = false;  // an assistant message with weight 1 (or no weight)
};

// Renders a chat as ChatML without a default system message: tokenize_chat("chatml", ...) with
// chatml_default_system = false. loss_mask is 1 on the content and the <|im_end|> of trained
// messages. Throws ft::Error when the tokenizer has no <|im_start|> / <|im_end|> tokens.
Sequence render_chatml(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer);

}  // namespace ft::data
