// Packing: several sequences per row with segment ids and restarting positions, the cursor
// resuming mid-epoch, and the same per-example loss as one sequence per row on a tiny model.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "models/param_layout.h"
#include "models/transformer.h"
#include "runtime/data/batch_loader.h"
#include "runtime/error.h"
#include "runtime/parameters.h"
#include "runtime/train/input_layout.h"

namespace ft::data {
namespace {

constexpr int32_t x = kIgnoreTarget;
constexpr int32_t p = kPaddingSegment;

// Lengths 4, 3, 5, 1 (a one-token sequence predicts nothing and is skipped) and 6.
std::vector<Sequence> mixed_sequences() {
  return {
      {{10, 11, 12, 13}, {0, 1, 1, 1}},
      {{20, 21, 22}, {0, 0, 1}},
      {{30, 31, 32, 33, 34}, {0, 1, 0, 1, 1}},
      {{40}, {0}},
      {{50, 51, 52, 53, 54, 55}, {0, 1, 1, 1, 1, 1}},
  };
}

TEST(Packing, RowsHoldWholeSequencesAsSegments) {
  const std::vector<Sequence> sequences = mixed_sequences();
  BatchLoader loader(sequences, /*seq_len=*/6, /*pad_id=*/9, /*seed=*/0, /*shuffle=*/false,
                     /*pack=*/true);
  EXPECT_TRUE(loader.packing());
  Batch batch;
  loader.next(3, batch);
  // Row 0: sequences 0 (3 positions) and 1 (2); sequence 2 (4) does not fit the last position.
  // Row 1: sequence 2, then 3 is skipped, then 4 (5 positions) does not fit. Row 2: sequence 4.
  EXPECT_EQ(batch.input_ids, (std::vector<int32_t>{10, 11, 12, 20, 21, 9,  //
                                                   30, 31, 32, 33, 9, 9,   //
                                                   50, 51, 52, 53, 54, 9}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{11, 12, 13, x, 22, x,  //
                                                 31, x, 33, 34, x, x,   //
                                                 51, 52, 53, 54, 55, x}));
  EXPECT_EQ(batch.positions, (std::vector<int32_t>{0, 1, 2, 0, 1, 0,  //
                                                   0, 1, 2, 3, 0, 1,  //
                                                   0, 1, 2, 3, 4, 0}));
  EXPECT_EQ(batch.segment_ids, (std::vector<int32_t>{0, 0, 0, 1, 1, p,  //
                                                     0, 0, 0, 0, p, p,  //
                                                     0, 0, 0, 0, 0, p}));
  EXPECT_EQ(batch.sequences, 4);
  EXPECT_EQ(batch.target_tokens, 3 + 1 + 3 + 5);
  EXPECT_EQ(loader.cursor().epoch, 1);
  EXPECT_EQ(loader.cursor().position, 0);
  EXPECT_EQ(loader.rows_for_epochs(1), 3);

  // Evaluation batches stay one sequence per row, without segments.
  loader.eval_batch(0, 2, batch);
  EXPECT_TRUE(batch.segment_ids.empty());
  EXPECT_EQ(batch.input_ids[6], 20);
  // Without packing every sequence takes a row.
  EXPECT_EQ(BatchLoader(sequences, 6, 9, 0, false).rows_for_epochs(2), 10);
}

TEST(Packing, RefusesDataWithNothingToPack) {
  const std::vector<Sequence> single_tokens = {{{1}, {0}}, {{2}, {0}}};
  EXPECT_THROW(BatchLoader(single_tokens, 4, 0, 0, true, /*pack=*/true), Error);
  EXPECT_NO_THROW(BatchLoader(single_tokens, 4, 0, 0, true, /*pack=*/false));
}

std::vector<Sequence> varied_sequences(int count) {
  std::vector<Sequence> sequences;
  for (int i = 0; i < count; ++i) {
    const int length = 2 + (i * 7) % 8;  // 2..9 tokens
    Sequence sequence;
    for (int t = 0; t < length; ++t) {
      sequence.tokens.push_back(1 + (i * 13 + t * 5) % 59);
      sequence.loss_mask.push_back(t > 0 && (t + i) % 3 != 0);
    }
    sequence.tokens[0] = i;  // the first token names the sequence
    sequences.push_back(sequence);
  }
  return sequences;
}

TEST(Packing, ResumesMidEpochAndRowCountsMatch) {
  const std::vector<Sequence> sequences = varied_sequences(23);
  const int seq_len = 10, batch_size = 2;
  BatchLoader uninterrupted(sequences, seq_len, 0, 42, true, true);
  std::vector<Batch> expected(12);
  for (Batch& batch : expected) uninterrupted.next(batch_size, batch);
  for (int stop : {1, 3, 4, 7}) {
    BatchLoader first(sequences, seq_len, 0, 42, true, true);
    Batch batch;
    for (int step = 0; step < stop; ++step) first.next(batch_size, batch);
    BatchLoader resumed(sequences, seq_len, 0, 42, true, true);
    resumed.set_cursor(first.cursor());
    for (int step = stop; step < 12; ++step) {
      resumed.next(batch_size, batch);
      EXPECT_EQ(batch.input_ids, expected[step].input_ids) << "stop " << stop << " step " << step;
      EXPECT_EQ(batch.targets, expected[step].targets);
      EXPECT_EQ(batch.positions, expected[step].positions);
      EXPECT_EQ(batch.segment_ids, expected[step].segment_ids);
    }
  }
  // rows_for_epochs counts the rows next() fills: after that many rows, the cursor has just
  // finished the epochs (the last row may already hold sequences of the next epoch).
  for (int64_t epochs : {1, 2, 3}) {
    BatchLoader loader(sequences, seq_len, 0, 42, true, true);
    const int64_t rows = loader.rows_for_epochs(epochs);
    Batch batch;
    for (int64_t row = 0; row + 1 < rows; ++row) loader.next(1, batch);
    EXPECT_EQ(loader.cursor().epoch, epochs - 1) << "epochs " << epochs;
    loader.next(1, batch);
    EXPECT_TRUE(loader.cursor().epoch == epochs ||
                (loader.cursor().epoch == epochs - 1 && loader.cursor().position == 0))
        << "epochs " << epochs;
  }
}

// A tiny Llama in fp64 whose forward gives a batch's summed loss.
struct TinyModel {
  ModelConfig config = model_config_preset("tiny-llama");
  std::unique_ptr<ParameterStore> params;
  std::unique_ptr<Transformer> model;
  ModelMemory memory;
  OpContext ctx;

  TinyModel(int batch, int seq_len) {
    params =
        std::make_unique<ParameterStore>(transformer_param_specs(config), DType::f64, Device::cpu);
    params->initialize(3);
    model = std::make_unique<Transformer>(config, *params, batch, seq_len);
    ctx.num_threads = 2;
    memory = plan_model_memory(*model, ctx);
  }

  double loss_sum(Batch& batch) { return model->forward(ctx, model_inputs(batch)).loss_sum; }
};

TEST(Packing, SameLossPerExampleAsOneExamplePerRow) {
  const std::vector<Sequence> sequences = varied_sequences(9);
  const int seq_len = 16, batch_size = 3;
  TinyModel tiny(batch_size, seq_len);
  BatchLoader padded(sequences, seq_len, 0, 5, false);
  std::vector<double> expected(sequences.size());
  Batch batch;
  for (size_t i = 0; i < sequences.size(); ++i) {
    padded.eval_batch(static_cast<int64_t>(i), 1 * batch_size, batch);
    for (size_t at = seq_len; at < batch.targets.size(); ++at) batch.targets[at] = kIgnoreTarget;
    expected[i] = tiny.loss_sum(batch);  // row 0 alone carries targets
  }

  BatchLoader packed(sequences, seq_len, 0, 5, /*shuffle=*/true, /*pack=*/true);
  std::map<int32_t, int> seen;
  int later_in_row = 0;
  for (int step = 0; step < 3; ++step) {
    Batch packed_batch;
    packed.next(batch_size, packed_batch);
    double total = 0.0;
    for (int row = 0; row < batch_size; ++row) {
      for (int t = 0; t < seq_len; ++t) {
        const size_t at = static_cast<size_t>(row) * seq_len + t;
        if (packed_batch.positions[at] != 0 || packed_batch.segment_ids[at] == p) continue;
        // One example of the row: only its targets count.
        const int32_t example = packed_batch.input_ids[at];
        Batch alone = packed_batch;
        for (size_t i = 0; i < alone.targets.size(); ++i) {
          const bool same = static_cast<int>(i) / seq_len == row &&
                            alone.segment_ids[i] == packed_batch.segment_ids[at];
          if (!same) alone.targets[i] = kIgnoreTarget;
        }
        const double loss = tiny.loss_sum(alone);
        EXPECT_NEAR(loss, expected[example], 1e-10 * (1 + expected[example]))
            << "example " << example << " in row " << row;
        total += loss;
        ++seen[example];
        if (t > 0 && loss > 0) {  // the control: without segments it sees the examples before it
          alone.segment_ids.clear();
          EXPECT_GT(std::abs(tiny.loss_sum(alone) - loss), 1e-6) << "example " << example;
          ++later_in_row;
        }
      }
    }
    EXPECT_NEAR(tiny.loss_sum(packed_batch), total, 1e-9 * (1 + total));
  }
  EXPECT_GE(seen.size(), 6u);  // most examples were compared (rows hold several)
  EXPECT_GE(later_in_row, 3);
}

}  // namespace
}  // namespace ft::data
