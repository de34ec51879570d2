// ft_generate: text from a base or tuned model, side-by-side comparisons, and evaluation.
//   ft_generate --checkpoint runs/x/checkpoints/step_000100.h5 --prompt "Hello" [--compare]
//       an ft run's checkpoint (full or adapter); --compare also answers with the untuned model
//   ft_generate --model HF_FOLDER_or_FULL.h5 [--adapter PEFT_FOLDER_or_ADAPTER.h5] --prompts
//   P.jsonl
//       a base model, optionally with an adapter trained on it
//   ft_generate --checkpoint X.h5 --eval valid.jsonl [--compare] [--eval-output eval.json]
//       loss, perplexity and mean token accuracy with training's data pipeline and loss mask; an
//       ft run's checkpoint is evaluated in its validation layout (its full_valid_* figures)
// Sampling is greedy unless --temperature, --top-k or --top-p is given (seeded by --seed).
// The completions go to stdout (and to --output as JSONL); what was loaded goes to stderr.
#include <cblas.h>
#include <omp.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "models/generation/evaluation.h"
#include "models/generation/generator.h"
#include "models/generation/kv_cache_model.h"
#include "models/generation/model_loading.h"
#include "models/generation/prompt_input.h"
#include "runtime/data/chat_template.h"
#include "runtime/data/dataset.h"
#include "runtime/data/hf_tokenizer.h"
#include "runtime/error.h"

namespace {

using nlohmann::json;

struct Arguments {
  ft::ModelSource source;
  std::string tokenizer, chat_template, system, output, eval_file, eval_output, dtype = "fp32";
  std::vector<std::string> prompts, prompt_ids, stops;
  std::string prompts_file;
  std::vector<int32_t> stop_ids;
  bool raw = false, compare = false, ignore_eos = false, greedy = false;
  int64_t max_new_tokens = 128;
  std::optional<double> temperature, top_p;
  std::optional<int64_t> top_k;
  uint64_t seed = 0;
  int threads = 0, eval_batch = 0;
  int64_t seq_len = 0;
};

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS"))
    if (int value = std::atoi(env); value > 0) return value;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::unique_ptr<ft::data::Tokenizer> load_tokenizer(const std::string& path) {
  if (path.empty()) return std::make_unique<ft::data::ByteTokenizer>();
  try {
    return ft::data::HfTokenizer::load(path);
  } catch (const ft::Error& error) {
    ft::fail("tokenizer {}: {}", path, error.what());
  }
}

ft::SamplingOptions sampling_options(const Arguments& args) {
  ft::SamplingOptions sampling;
  sampling.seed = args.seed;
  const bool sampled = args.temperature || args.top_k || args.top_p;
  sampling.greedy = args.greedy || !sampled || (args.temperature && *args.temperature == 0.0);
  sampling.temperature = args.temperature.value_or(1.0);
  sampling.top_k = args.top_k.value_or(0);
  sampling.top_p = args.top_p.value_or(1.0);
  ft::check_sampling_options(sampling);
  return sampling;
}

std::string sampling_summary(const ft::SamplingOptions& s) {
  if (s.greedy) return "greedy";
  return fmt::format("sampling (temperature {}, top-k {}, top-p {}, seed {})", s.temperature,
                     s.top_k == 0 ? std::string("all") : std::to_string(s.top_k), s.top_p, s.seed);
}

// Writes `text` to a temporary file next to `path`, then renames it: no partial file is left.
void write_atomically(const std::string& path, const char* option, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) ft::fail("{} {}: cannot write {}", option, path, tmp);
    file << text;
    file.close();
    if (!file) {
      std::filesystem::remove(tmp);
      ft::fail("{} {}: writing {} failed", option, path, tmp);
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::filesystem::remove(tmp);
    ft::fail("{} {}: cannot move {} there: {}", option, path, tmp, error.message());
  }
}

json generation_json(const ft::Generation& g) {
  return {{"completion", g.text},
          {"tokens", g.tokens},
          {"finish_reason", g.finish_reason},
          {"new_tokens", g.tokens.size()}};
}

void print_answer(const std::string& label, const ft::Generation& g) {
  std::cout << fmt::format("--- {} ({}, {} tokens) ---\n{}\n", label, g.finish_reason,
                           g.tokens.size(), g.text);
}

// Generates for every prompt, with the tuned model and (--compare) the untuned one.
void generate_all(const Arguments& args, const ft::LoadedModel& loaded,
                  const ft::data::Tokenizer& tokenizer, const std::vector<ft::PromptInput>& prompts,
                  const ft::GenerationOptions& options, int threads) {
  size_t longest = 0;
  for (const ft::PromptInput& p : prompts) longest = std::max(longest, p.ids.size());
  ft::KvCacheOptions cache;
  cache.num_threads = threads;
  const int64_t positions = loaded.model.max_position_embeddings - loaded.peft.position_offset();
  cache.capacity =
      std::min<int64_t>(positions, static_cast<int64_t>(longest) + options.max_new_tokens);
  if (static_cast<int64_t>(longest) > positions)
    ft::fail("the longest prompt has {} tokens; the model's context holds {}", longest, positions);
  ft::KvCacheModel tuned(loaded.model, *loaded.params, loaded.peft, cache);
  std::unique_ptr<ft::KvCacheModel> untuned;
  if (args.compare) {
    ft::KvCacheOptions base_cache = cache;
    base_cache.capacity = std::min<int64_t>(loaded.model.max_position_embeddings,
                                            static_cast<int64_t>(longest) + options.max_new_tokens);
    untuned = std::make_unique<ft::KvCacheModel>(loaded.model, *loaded.untuned(), ft::PeftSpec{},
                                                 base_cache);
    std::cout << "base model:  " << loaded.untuned_description << "\n"
              << "tuned model: " << loaded.description << "\n";
  }
  std::string records;  // --output, written once every prompt is answered
  for (size_t i = 0; i < prompts.size(); ++i) {
    const ft::PromptInput& prompt = prompts[i];
    std::cout << fmt::format("=== prompt {}/{} ({} tokens) ===\n{}\n", i + 1, prompts.size(),
                             prompt.ids.size(), prompt.text);
    json record = {{"prompt", prompt.text}, {"prompt_tokens", prompt.ids.size()}};
    if (!prompt.reference.empty()) record["reference"] = prompt.reference;
    const ft::Generation answer = ft::generate(tuned, prompt.ids, options, &tokenizer);
    if (untuned) {
      const ft::Generation base = ft::generate(*untuned, prompt.ids, options, &tokenizer);
      print_answer("base model", base);
      print_answer("tuned model", answer);
      record["base"] = generation_json(base);
      record["tuned"] = generation_json(answer);
    } else {
      print_answer(loaded.tuned ? "tuned model" : "model", answer);
      record.update(generation_json(answer));
    }
    if (!prompt.reference.empty())
      std::cout << fmt::format("--- reference ---\n{}\n", prompt.reference);
    std::cout << std::flush;
    records += record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  if (!args.output.empty()) write_atomically(args.output, "--output", records);
}

json eval_json(const ft::EvalResult& r) {
  return {{"loss", r.loss},
          {"perplexity", r.perplexity},
          {"mean_token_accuracy", r.accuracy},
          {"tokens", r.tokens},
          {"sequences", r.sequences}};
}

// Loss, perplexity and accuracy with training's data pipeline and loss mask. For an ft run the
// rows are laid out as its validation was (data.seq_len, train.micro_batch_size, EOS padding), so
// the figures equal the run's full_valid_loss and full_valid_mean_token_accuracy.
void evaluate(const Arguments& args, const ft::LoadedModel& loaded,
              const ft::data::Tokenizer& tokenizer, const std::string& chat_template, int threads) {
  ft::data::DataOptions data;
  data.chat_template = chat_template;
  data.chatml_default_system = loaded.chatml_default_system;
  if (!loaded.train_on.empty()) data.train_on = loaded.train_on;
  if (!loaded.data_format.empty()) data.format = loaded.data_format;
  if (!loaded.too_long.empty()) data.too_long = loaded.too_long;
  const int64_t positions = loaded.model.max_position_embeddings - loaded.peft.position_offset();
  const int64_t seq_len = args.seq_len > 0 ? args.seq_len : loaded.seq_len;
  if (seq_len > positions)
    ft::fail("--seq-len {}: more than the model's {} positions{}", seq_len, positions,
             loaded.peft.position_offset() > 0 ? " left after the adapter's virtual tokens" : "");
  data.seq_len = static_cast<int>(seq_len > 0 ? seq_len : positions);
  ft::data::DatasetReport report;
  const std::vector<ft::data::Sequence> sequences =
      ft::data::load_dataset(args.eval_file, data, tokenizer, &report);
  std::cerr << "ft_generate: eval data: " << ft::data::format_report(report) << "\n";

  ft::EvalOptions options;
  options.batch_size = args.eval_batch > 0           ? args.eval_batch
                       : loaded.micro_batch_size > 0 ? loaded.micro_batch_size
                                                     : 4;
  // Without a known sequence length the rows are as long as the longest example (not the
  // model's whole context).
  options.seq_len = seq_len > 0 ? static_cast<int>(seq_len) : 0;
  try {
    options.pad_id = tokenizer.eos_id();
  } catch (const ft::Error&) {
    options.pad_id = 0;  // padding is never a target: any id does
  }
  options.num_threads = threads;
  std::cout << fmt::format(
      "eval {}: {} sequences, {} target tokens (loss on {} tokens; rows of {} x {})\n",
      args.eval_file, sequences.size(), report.trained_tokens, data.train_on, options.batch_size,
      options.seq_len > 0 ? std::to_string(options.seq_len) : std::string("the longest"));
  auto line = [](const std::string& label, const ft::EvalResult& r) {
    std::cout << fmt::format(
        "{:<12} loss {:.6f}  perplexity {:.6g}  mean token accuracy {:.6f}  ({} tokens)\n", label,
        r.loss, r.perplexity, r.accuracy, r.tokens);
  };
  json record = {{"eval_file", args.eval_file}};
  if (args.compare) {
    const ft::EvalResult base =
        ft::evaluate_sequences(loaded.model, *loaded.untuned(), ft::PeftSpec{}, sequences, options);
    line("base model", base);
    record["base"] = eval_json(base);
  }
  const ft::EvalResult tuned =
      ft::evaluate_sequences(loaded.model, *loaded.params, loaded.peft, sequences, options);
  line(loaded.tuned ? "tuned model" : "model", tuned);
  record[loaded.tuned ? "tuned" : "model"] = eval_json(tuned);
  std::cout << std::flush;
  if (!args.eval_output.empty())
    write_atomically(args.eval_output, "--eval-output", record.dump(2) + "\n");
}

void run(Arguments& args) {
  const int threads = args.threads > 0 ? args.threads : default_threads();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  if (args.prompts.empty() && args.prompts_file.empty() && args.prompt_ids.empty() &&
      args.eval_file.empty())
    ft::fail("nothing to do: give --prompt, --prompts, --prompt-ids or --eval");
  if (args.dtype != "fp32" && args.dtype != "fp64")
    ft::fail("--dtype {}: expected fp32 or fp64", args.dtype);
  if (!args.eval_output.empty() && args.eval_file.empty())
    ft::fail("--eval-output {}: it holds --eval's figures; give --eval FILE too", args.eval_output);
  if (args.eval_batch < 0) ft::fail("--eval-batch {}: expected at least 1", args.eval_batch);
  if (args.seq_len < 0) ft::fail("--seq-len {}: expected at least 1", args.seq_len);
  if (args.max_new_tokens < 1)
    ft::fail("--max-new-tokens {}: expected at least 1", args.max_new_tokens);
  ft::GenerationOptions options;
  options.max_new_tokens = args.max_new_tokens;
  options.sampling = sampling_options(args);
  options.stop_strings = args.stops;

  args.source.dtype = args.dtype == "fp64" ? ft::DType::f64 : ft::DType::f32;
  args.source.load_untuned = args.compare;
  args.source.num_threads = threads;
  const ft::LoadedModel loaded = ft::load_model(args.source);
  if (args.compare && !loaded.tuned)
    ft::fail(
        "--compare needs a tuned model to compare with its base: an ft run's checkpoint "
        "(--checkpoint) or a base model with an adapter (--model and --adapter)");
  std::cerr << "ft_generate: " << loaded.description << "\n";

  const std::string tokenizer_path = !args.tokenizer.empty() ? args.tokenizer : loaded.tokenizer;
  const std::unique_ptr<ft::data::Tokenizer> tokenizer = load_tokenizer(tokenizer_path);
  const bool text_input =
      !args.prompts.empty() || !args.prompts_file.empty() || !args.eval_file.empty();
  if (text_input && tokenizer->vocab_size() > loaded.model.vocab_size)
    ft::fail("{} has {} ids, more than the model's vocabulary of {}: {}",
             tokenizer_path.empty() ? "the byte tokenizer (no tokenizer.json was found)"
                                    : tokenizer_path,
             tokenizer->vocab_size(), loaded.model.vocab_size,
             tokenizer_path.empty() ? "pass --tokenizer, or token ids with --prompt-ids"
                                    : "this tokenizer is not the model's");
  std::string chat_template = !args.chat_template.empty()     ? args.chat_template
                              : !loaded.chat_template.empty() ? loaded.chat_template
                                                              : "plain";
  ft::data::check_chat_template_name(chat_template);
  if (args.chat_template.empty() && loaded.unknown_chat_template)
    std::cerr << "ft_generate: warning: the model folder's chat template is none of ft's "
                 "built-in ones (chatml, llama3, llama2, mistral); prompts use '"
              << chat_template << "' (choose one with --chat-template)\n";
  std::cerr << fmt::format("ft_generate: tokenizer {}; chat template {}; {}\n",
                           tokenizer_path.empty() ? "byte-level" : tokenizer_path,
                           args.raw ? "none (--raw)" : chat_template,
                           sampling_summary(options.sampling));

  if (!args.eval_file.empty()) evaluate(args, loaded, *tokenizer, chat_template, threads);

  ft::PromptEncoding encoding;
  encoding.chat_template = args.raw ? "" : chat_template;
  encoding.system = args.system;
  encoding.chatml_default_system = loaded.chatml_default_system;
  std::vector<ft::PromptInput> prompts;
  for (const std::string& text : args.prompts)
    prompts.push_back(ft::encode_text_prompt(text, encoding, *tokenizer));
  if (!args.prompts_file.empty()) {
    encoding.chat_template = chat_template;  // conversations always go through the template
    for (ft::PromptInput& p : ft::read_prompt_file(args.prompts_file, encoding, *tokenizer))
      prompts.push_back(std::move(p));
  }
  for (const std::string& ids : args.prompt_ids) {
    ft::PromptInput prompt;
    prompt.ids = ft::parse_token_ids(ids, loaded.model.vocab_size);
    prompt.text = "(token ids " + ids + ")";
    prompts.push_back(std::move(prompt));
  }
  if (prompts.empty()) return;
  if (!args.ignore_eos) options.stop_ids = ft::default_stop_ids(*tokenizer, chat_template);
  for (int32_t id : args.stop_ids) {
    if (id < 0 || id >= loaded.model.vocab_size)
      ft::fail("--stop-id {}: not an id of the model's vocabulary (0 to {})", id,
               loaded.model.vocab_size - 1);
    options.stop_ids.push_back(id);
  }
  generate_all(args, loaded, *tokenizer, prompts, options, threads);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ft_generate: generate with a base or tuned model, compare them side by side, evaluate."};
  Arguments args;
  auto* checkpoint = app.add_option("--checkpoint", args.source.checkpoint,
                                    "An ft run's checkpoint (.h5): full or adapter");
  auto* model = app.add_option("--model", args.source.model,
                               "A base model: a Hugging Face folder or a full ft checkpoint");
  app.add_option("--adapter", args.source.adapter,
                 "With --model: a Hugging Face PEFT folder or an ft adapter checkpoint")
      ->needs(model);
  checkpoint->excludes(model);
  app.add_option("--prompt", args.prompts, "A prompt (one user turn of the chat template)");
  app.add_option("--prompts", args.prompts_file,
                 "JSONL of {\"messages\": [...]} (without the final assistant turn) or "
                 "{\"prompt\": ...}");
  app.add_option("--prompt-ids", args.prompt_ids, "A prompt as token ids: 1,2,3");
  app.add_option("--system", args.system, "A system message in front of each --prompt");
  app.add_flag("--raw", args.raw, "Encode --prompt texts as they are (no chat template)");
  app.add_option("--chat-template", args.chat_template,
                 "chatml | llama3 | llama2 | mistral | plain (default: the run's data."
                 "chat_template, the folder's template, or plain)");
  app.add_option("--tokenizer", args.tokenizer,
                 "tokenizer.json (default: the run's data.tokenizer, the folder's, or bytes)");
  app.add_option("--max-new-tokens", args.max_new_tokens, "Tokens to generate at most")
      ->capture_default_str();
  app.add_flag("--greedy", args.greedy, "Always take the most likely token");
  app.add_option("--temperature", args.temperature, "Sample at this temperature (0: greedy)");
  app.add_option("--top-k", args.top_k, "Sample among the k most likely tokens");
  app.add_option("--top-p", args.top_p, "Sample among the most likely tokens of mass p");
  app.add_option("--seed", args.seed, "Sampling seed")->capture_default_str();
  app.add_option("--stop", args.stops, "Stop when the output contains this text");
  app.add_option("--stop-id", args.stop_ids, "Stop at this token id");
  app.add_flag("--ignore-eos", args.ignore_eos,
               "Do not stop at EOS or the template's end of turn (only --stop, --stop-id)");
  app.add_flag("--compare", args.compare,
               "Also generate (or evaluate) with the untuned model, side by side");
  app.add_option("--output", args.output, "Also write the results as JSONL here");
  app.add_option("--eval", args.eval_file,
                 "Loss, perplexity and mean token accuracy on this JSONL (training's loss mask)");
  app.add_option("--eval-output", args.eval_output,
                 "With --eval: also write the figures as JSON here (full precision)");
  app.add_option("--eval-batch", args.eval_batch,
                 "Sequences per evaluation forward (default: the run's train.micro_batch_size, "
                 "or 4)");
  app.add_option("--seq-len", args.seq_len,
                 "Evaluation: longer examples are truncated (default: the run's data.seq_len)");
  app.add_option("--dtype", args.dtype, "--model's precision: fp32 | fp64")->capture_default_str();
  app.add_option("--threads", args.threads, "CPU threads (default: all, or OMP_NUM_THREADS)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    run(args);
  } catch (const ft::Error& error) {
    std::cerr << "ft_generate: error: " << error.what() << std::endl;
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "ft_generate: unexpected error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
