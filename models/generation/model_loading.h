// Loading a model to generate with or evaluate, from what a user points ft_generate at:
//   a checkpoint of an ft run (full or adapter: load_run_parameters rebuilds its base), or
//   a base model (a Hugging Face folder or a full ft checkpoint) with an optional adapter
//   (a Hugging Face PEFT folder or an ft adapter checkpoint) that must belong to that base.
// The tuned model's untuned counterpart comes along for comparisons: the base under an adapter
// (the same parameters without the adapter) or, for a full fine-tune, the weights its run started
// from.
#pragma once

#include <memory>
#include <string>

#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "runtime/parameters.h"

namespace ft {

struct ModelSource {
  std::string checkpoint;    // an ft run's checkpoint (.h5), full or adapter
  std::string model;         // a Hugging Face model folder or a full ft checkpoint
  std::string adapter;       // with `model`: a PEFT folder or an ft adapter checkpoint
  DType dtype = DType::f32;  // `model`'s precision (a checkpoint keeps its run's)
  // A full fine-tune's starting weights are loaded only when asked (they may be large or gone).
  bool load_untuned = false;
  int num_threads = 1;
};

struct LoadedModel {
  ModelConfig model;
  PeftSpec peft;  // the adapter; method full without one
  std::unique_ptr<ParameterStore> params;
  bool tuned = false;  // an adapter or a tuned checkpoint: there is an untuned model to compare
  // The weights a full fine-tune started from (load_untuned); null otherwise.
  std::unique_ptr<ParameterStore> untuned_params;
  std::string description;          // the tuned (or only) model, for the log
  std::string untuned_description;  // its untuned counterpart
  // What the source says about its data: tokenizer.json ("": none), chat template ("": none),
  // data.chatml_default_system, data.train_on ("" : unknown) and data.seq_len (0: unknown).
  std::string tokenizer;
  std::string chat_template;
  bool chatml_default_system = false;
  std::string train_on;
  int64_t seq_len = 0;
  // An ft run's data.format and data.too_long ("": unknown) and train.micro_batch_size (0:
  // unknown): its validation layout, so --eval gives the trainer's figures.
  std::string data_format;
  std::string too_long;
  int micro_batch_size = 0;
  // A Hugging Face folder whose tokenizer_config.json has a chat template that is none of the
  // built-in ones (chat_template is then "").
  bool unknown_chat_template = false;

  // The untuned model's parameters and method: the base under an adapter, or untuned_params.
  // Null parameters when there is none (an untuned model, or load_untuned was false).
  const ParameterStore* untuned() const {
    return peft.is_peft() ? params.get() : untuned_params.get();
  }
};

// Throws ft::Error naming the path and the option (--checkpoint, --model, --adapter) for a
// missing file, the wrong kind of file (an adapter given as a model, a full checkpoint given as
// an adapter), or an adapter trained on another base (fingerprints or shapes differ).
LoadedModel load_model(const ModelSource& source);

// The method a Hugging Face PEFT folder's adapter_config.json describes, resolved against
// `model`. P-tuning folders and projected prefixes load as the prompt table / prefix PEFT saved.
PeftSpec peft_spec_from_folder(const std::string& dir, const ModelConfig& model);

// The built-in chat template equal to the one a Hugging Face folder's tokenizer_config.json
// carries (chatml, llama3, llama2, mistral), or "" when it has none or another.
std::string chat_template_of_folder(const std::string& dir);

}  // namespace ft
