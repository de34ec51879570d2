"""Greedy continuations by transformers (and PEFT) for the golden-file generators: generate() with
its KV cache, and a cache-free loop that recomputes the whole sequence each step to check it.

Importing this module also patches transformers for Debian's torch 1.13 (see below).
"""

import torch
import transformers.generation.utils

# generate() asks whether the model is FSDP-managed by importing torch.distributed.fsdp, which
# Debian's torch 1.13 cannot import under Python 3.11 (a dataclass error). Nothing here is FSDP.
transformers.generation.utils.is_fsdp_managed_module = lambda module: False


def greedy_generate(model, input_ids, new_tokens):
    """generate()'s greedy ids (no EOS stop) and the top-2 logit gap of each step: a small gap is
    where an fp32 summation order could flip the argmax."""
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=new_tokens, min_new_tokens=0, do_sample=False,
                         num_beams=1, eos_token_id=None, pad_token_id=0,
                         return_dict_in_generate=True, output_scores=True)
    new = out.sequences[0, input_ids.shape[1]:].tolist()
    assert len(new) == new_tokens, new
    gaps = [float(torch.topk(scores[0], 2).values.diff().abs()) for scores in out.scores]
    return new, gaps


def recompute_greedy(model, input_ids, new_tokens):
    """Greedy decoding that runs the whole sequence through the model at every step, no cache."""
    ids = input_ids
    for _ in range(new_tokens):
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, input_ids.shape[1]:].tolist()
