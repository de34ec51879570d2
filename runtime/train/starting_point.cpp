#include "runtime/train/starting_point.h"

#include <filesystem>
#include <sstream>

#include "models/peft/peft_interchange.h"
#include "models/peft/prompt_init.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/run_parameters.h"

namespace ft {
namespace {

// The fields that decide which data a resumed run reads next and which model it continues; the
// rest (learning rate, length of the run, logging, layout, device and dtype: the checkpoint holds
// the master weights, converted on load) may change on resume.
void check_resume_compatible(const std::string& path, const config::RunConfig& saved,
                             const config::RunConfig& now) {
  for (const char* field :
       {"seed", "data.train_file", "data.format", "data.seq_len", "data.shuffle", "data.too_long",
        "data.tokenizer", "data.chat_template", "data.train_on", "data.packing", "data.valid_split",
        "data.chatml_default_system", "model.preset", "model.hf_config",
        "model.max_position_embeddings", "model.init_from"}) {
    // model.init_from matters only where it names the architecture (neither preset nor
    // hf_config): the resumed checkpoint replaces the weights, and a PEFT base's fingerprint is
    // checked on its own.
    if (std::string(field) == "model.init_from" &&
        !(saved.model().preset().empty() && saved.model().hf_config().empty()))
      continue;
    std::string before = config::get_field(saved, field), after = config::get_field(now, field);
    if (before != after)
      fail(
          "--resume {}: config field {} was '{}' in the checkpointed run and is '{}' now; the "
          "run cannot continue where it stopped. Resume with the same value, or start a new run "
          "from these weights with model.init_from",
          path, field, before, after);
  }
}

// peft.init_from: an ft adapter checkpoint or a Hugging Face PEFT folder.
void load_adapter(const std::string& path, const StartingPointRequest& request,
                  const ParameterStore& params, const BaseIdentity& base) {
  if (std::filesystem::is_directory(path)) {
    import_peft_adapter(path, *request.peft, *request.model, params, base.fingerprint);
    return;
  }
  if (!std::filesystem::exists(path)) fail("peft.init_from = {}: no such file or folder", path);
  if (!is_adapter_checkpoint(path))
    fail(
        "peft.init_from = {}: not an adapter checkpoint (a full checkpoint is a base: use "
        "model.init_from)",
        path);
  check_same_adapter(saved_peft_spec(path, *request.model), *request.peft,
                     "peft.init_from = " + path);
  load_training_checkpoint(path, params, /*with_optimizer=*/false, &base);
}

TrainState resume(const StartingPointRequest& request, const ParameterStore& params,
                  const BaseIdentity* base) {
  const std::string& path = request.resume_path;
  int64_t resume_step = 0;
  std::string saved_config;
  try {
    checkpoint::CheckpointReader reader(path);
    resume_step = reader.int_attribute("step");
    saved_config = reader.string_attribute("config");
  } catch (const Error& error) {
    fail(
        "{}\n(if this checkpoint is damaged, move it out of {} and --resume continues from the "
        "one before it)",
        error.what(), request.checkpoint_dir);
  }
  // Continuing from an older checkpoint would overwrite (and rotate away) newer ones. Their step
  // comes from the file name, so a damaged newer file does not block this check.
  if (auto newest = checkpoint::latest_checkpoint(request.checkpoint_dir)) {
    if (checkpoint::checkpoint_step(*newest).value_or(0) > resume_step)
      fail(
          "--resume {}: {} holds a newer checkpoint ({}) that this run would overwrite; resume "
          "from the newest (--resume), move that file away if it is damaged, or resume into "
          "another output_dir",
          path, request.checkpoint_dir, *newest);
  }
  // The config check first: a changed model would otherwise surface as a missing tensor.
  const config::RunConfig saved = config::from_text(saved_config, path);
  check_resume_compatible(path, saved, *request.config);
  // The method compared as resolved: "" and "q_proj,v_proj" select the same LoRA modules.
  check_same_adapter(resolve_peft_spec(saved.peft(), *request.model, saved.data().seq_len()),
                     *request.peft, "--resume " + path);
  TrainState state = load_training_checkpoint(path, params, /*with_optimizer=*/true, base);
  if (state.train_sequences != request.train_sequences)
    fail("--resume {}: the checkpointed run had {} training sequences, {} now holds {}", path,
         state.train_sequences, request.config->data().train_file(), request.train_sequences);
  if (state.step >= request.total_steps)
    fail(
        "--resume {}: the checkpoint is at step {} and this run has {} steps: nothing left to "
        "train (raise train.max_steps or train.epochs)",
        path, state.step, request.total_steps);
  return state;
}

}  // namespace

StartingPoint load_starting_point(const StartingPointRequest& request, ParameterStore& params) {
  const config::RunConfig& config = *request.config;
  const ModelConfig& model = *request.model;
  const PeftSpec& peft = *request.peft;
  const uint64_t seed = config.seed();
  StartingPoint point;
  params.initialize(seed);
  const std::string& base_path = config.model().init_from();
  if (peft.is_peft()) {
    // The frozen base comes from model.init_from (or the seeded init) on every start, resumes
    // included: adapter checkpoints hold only the adapter.
    if (!base_path.empty()) load_init_weights(base_path, model, params, /*base_only=*/true);
    point.base.fingerprint = base_fingerprint(params, request.num_threads);
    point.base.description =
        model.summary() + (base_path.empty() ? fmt::format(", seeded random init (seed {})", seed)
                                             : ", " + base_path);
    std::vector<int32_t> text_ids;
    if (peft.prompt_init == PromptInit::text)
      text_ids = request.tokenizer->encode(peft.prompt_init_text);
    initialize_prompt_from_vocabulary(peft, model, params, text_ids, seed);
  }
  const BaseIdentity* base = peft.is_peft() ? &point.base : nullptr;
  if (!request.resume_path.empty()) {
    point.state = resume(request, params, base);
    point.messages =
        fmt::format("ft: resumed from {} at step {}\n", request.resume_path, point.state.step);
  } else {
    if (!base_path.empty() && !peft.is_peft())
      load_init_weights(base_path, model, params, /*base_only=*/false);
    const std::string& adapter = config.peft().init_from();
    if (!adapter.empty()) {
      if (!peft.is_peft())
        fail("peft.init_from = {}: an adapter needs a PEFT method (peft.method is full)", adapter);
      load_adapter(adapter, request, params, point.base);
      point.messages = "ft: adapter initialized from " + adapter + "\n";
    }
  }
  point.state.seed = seed;
  point.state.train_sequences = request.train_sequences;
  return point;
}

void broadcast_starting_point(StartingPoint& point, Communicator& world, int root) {
  if (world.size() == 1) return;
  // Numbers as one line of text, then the free-form strings one by one.
  std::string numbers;
  if (world.rank() == root) {
    const TrainState& s = point.state;
    numbers = fmt::format("{} {} {} {} {} {}", s.step, s.cursor.epoch, s.cursor.position,
                          s.trained_tokens, s.seed, s.train_sequences);
  }
  world.broadcast(numbers, root);
  std::istringstream in(numbers);
  TrainState& s = point.state;
  in >> s.step >> s.cursor.epoch >> s.cursor.position >> s.trained_tokens >> s.seed >>
      s.train_sequences;
  world.broadcast(s.config_text, root);
  world.broadcast(point.base.fingerprint, root);
  world.broadcast(point.base.description, root);
  world.broadcast(point.messages, root);
}

}  // namespace ft
