#include "models/peft/prompt_init.h"

#include "kernels/ops.h"
#include "runtime/random.h"

namespace ft {

void initialize_prompt_from_vocabulary(const PeftSpec& spec, const ModelConfig& model,
                                       const ParameterStore& params,
                                       const std::vector<int32_t>& text_ids, uint64_t seed) {
  if (spec.method != PeftMethod::prompt_tuning || spec.prompt_init == PromptInit::random) return;
  const int64_t P = spec.num_virtual_tokens;
  std::vector<int32_t> ids(P);
  if (spec.prompt_init == PromptInit::sample_vocab) {
    Random random(seed, /*stream=*/0x70726f6d7074ull);  // "prompt"
    for (int32_t& id : ids) id = static_cast<int32_t>(random.below(model.vocab_size));
  } else {
    if (text_ids.empty())
      fail("peft.prompt_tuning_init_text = '{}' encodes to no tokens", spec.prompt_init_text);
    for (int64_t i = 0; i < P; ++i) ids[i] = text_ids[i % text_ids.size()];
  }
  OpContext ctx;
  ctx.device = params.device();
  const Tensor table = params.at(model_param_names(model).token_embedding).value;
  ops::embedding_forward(ctx, params.at("prompt_embeddings").value,
                         Tensor(ids.data(), DType::i32, Shape{P}), table);
}

}  // namespace ft
