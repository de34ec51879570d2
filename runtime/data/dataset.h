// Datasets: a file on disk -> training sequences of at most seq_len + 1 tokens with a loss mask.
// Formats: "chat" (OpenAI chat JSONL, rendered as ChatML) and "text" (one token stream cut into
// overlapping windows); "auto" picks chat for a .jsonl file (any letter case), text otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/data/tokenizer.h"

namespace ft::data {

// One training sequence of at most seq_len + 1 tokens. loss_mask[t] == 1 when tokens[t] is
// trained as the prediction made at position t - 1 (loss_mask[0] is always 0).
struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;
};

struct DatasetReport {
  std::string path;
  std::string format;    // the resolved format: "chat" or "text"
  int64_t examples = 0;  // chat: non-blank lines; text: 1 (the whole file)
  int64_t sequences = 0;
  int64_t min_tokens = 0;  // tokens per example, before truncation
  int64_t max_tokens = 0;
  double mean_tokens = 0;
  int64_t truncated = 0;       // examples longer than seq_len + 1 that were cut
  int64_t dropped = 0;         // examples longer than seq_len + 1 that were left out
  int64_t trained_tokens = 0;  // sum of loss_mask over all sequences
  // Sequences whose loss_mask is all zero, e.g. truncation cut away the whole assistant answer.
  int64_t untrained_sequences = 0;
};

// The format load_sequences reads `path` as: "chat" or "text". format is "auto" (chat for a
// .jsonl extension in any letter case, text otherwise), "chat" or "text"; anything else throws
// ft::Error naming the value.
std::string resolve_format(const std::string& format, const std::string& path);

// format: "auto" | "chat" | "text". too_long: "truncate" (keep the first seq_len + 1 tokens) or
// "drop". Throws ft::Error naming the file (and line, for chat) on bad input, a missing file, a
// path that is not a regular file, or a dataset with no sequences or no trained tokens. `report`
// may be null.
std::vector<Sequence> load_sequences(const std::string& path, const std::string& format,
                                     const Tokenizer& tokenizer, int seq_len,
                                     const std::string& too_long, DatasetReport* report);

// One or two human-readable lines describing the report.
std::string format_report(const DatasetReport& report);

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  bool trained = false;  // an assistant message with weight 1 (or no weight)
};

// Renders a chat as ChatML: for each message <|im_start|> + encode(role + "\n" + content) +
// <|im_end|> + encode("\n"). loss_mask is 1 on the content and the <|im_end|> of trained messages.
// Throws ft::Error when the tokenizer has no <|im_start|> / <|im_end|> tokens.
Sequence render_chatml(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer);

}  // namespace ft::data
