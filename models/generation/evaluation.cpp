#include "models/generation/evaluation.h"

#include <algorithm>
#include <cmath>

#include "models/transformer.h"
#include "runtime/data/batch_loader.h"
#include "runtime/train/input_layout.h"

namespace ft {

EvalResult evaluate_sequences(const ModelConfig& model, const ParameterStore& params,
                              const PeftSpec& peft, const std::vector<data::Sequence>& sequences,
                              const EvalOptions& options) {
  if (sequences.empty()) fail("nothing to evaluate: the dataset has no sequences");
  if (options.batch_size < 1)
    fail("evaluation batch size {}: expected at least 1", options.batch_size);
  size_t longest = 0;
  for (const data::Sequence& sequence : sequences)
    longest = std::max(longest, sequence.tokens.size());
  // A sequence of n tokens makes n - 1 predictions.
  const int seq_len =
      options.seq_len > 0 ? options.seq_len : static_cast<int>(std::max<size_t>(longest, 2) - 1);
  if (longest > static_cast<size_t>(seq_len) + 1)
    fail("an evaluation sequence has {} tokens: more than the rows' {} positions + 1", longest,
         seq_len);
  if (seq_len + peft.position_offset() > model.max_position_embeddings)
    fail(
        "evaluation rows of {} positions{}: more than the model's {} positions (evaluate with a "
        "shorter sequence length)",
        seq_len,
        peft.position_offset() > 0 ? fmt::format(" after {} virtual tokens", peft.position_offset())
                                   : "",
        model.max_position_embeddings);
  // The batch size is kept for a set shorter than a batch (padding rows), as the trainer does, so
  // the forwards and their rounding are the same.
  const int batch = options.batch_size;
  data::BatchLoader loader(sequences, seq_len, options.pad_id, /*seed=*/0, /*shuffle=*/false);
  Transformer transformer(model, params, peft, batch, peft.model_seq_len(seq_len));
  OpContext ctx;
  ctx.device = params.device();
  ctx.num_threads = std::max(1, options.num_threads);
  ModelMemory memory = plan_model_memory(transformer, ctx);

  data::Batch rows;
  LayoutScratch scratch;
  double loss_sum = 0.0;
  int64_t correct = 0, tokens = 0;
  for (int64_t first = 0; first < loader.size(); first += batch) {
    loader.eval_batch(first, batch, rows);
    lay_out_batch(peft, rows, &scratch);
    const ForwardResult forward = transformer.forward(ctx, model_inputs(rows));
    loss_sum += forward.loss_sum;
    correct += forward.correct;
    tokens += rows.target_tokens;
  }
  if (tokens == 0) fail("nothing to evaluate: no sequence has a target token (loss mask all 0)");
  EvalResult result;
  result.sequences = loader.size();
  result.tokens = tokens;
  result.loss = loss_sum / static_cast<double>(tokens);
  result.perplexity = std::exp(result.loss);
  result.accuracy = static_cast<double>(correct) / static_cast<double>(tokens);
  return result;
}

EvalResult evaluate_sequences(const ModelConfig& model, const ParameterStore& params,
                              const PeftSpec& peft, const std::vector<data::Sequence>& sequences,
                              int batch_size, int num_threads) {
  EvalOptions options;
  options.batch_size =
      static_cast<int>(std::min<size_t>(std::max(batch_size, 1), sequences.size()));
  options.num_threads = num_threads;
  return evaluate_sequences(model, params, peft, sequences, options);
}

}  // namespace ft
