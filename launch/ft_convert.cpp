// ft_convert: move trained adapters and models between ft and Hugging Face.
//   ft_convert export-adapter --checkpoint runs/x/checkpoints/step_000100.h5 --out DIR
//       an ft adapter checkpoint -> a Hugging Face PEFT folder (adapter_config.json +
//       adapter_model.safetensors) that peft.PeftModel.from_pretrained loads
//   ft_convert merge-lora --checkpoint ADAPTER.h5 --out MERGED.h5
//       a LoRA adapter checkpoint -> a full checkpoint of the base with W + scale * B A, usable as
//       model.init_from
// A PEFT folder goes the other way through ft_train's peft.init_from.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "kernels/context.h"
#include "models/peft/lora_merge.h"
#include "models/peft/peft_interchange.h"
#include "runtime/error.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/train_state.h"

namespace {

int threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void export_adapter(const std::string& checkpoint, const std::string& out,
                    const std::string& base_name) {
  ft::RunParameters run = ft::load_run_parameters(checkpoint, threads());
  if (!run.peft.is_peft())
    ft::fail("{} is a full fine-tuning checkpoint: it holds no adapter to export", checkpoint);
  ft::PeftExportInfo info;
  info.base_model_name_or_path = base_name.empty() ? run.base.description : base_name;
  info.base_fingerprint = run.base.fingerprint;
  ft::OpContext ctx;
  ctx.num_threads = threads();
  ft::export_peft_adapter(out, run.peft, run.model, *run.params, info, ctx);
  std::cout << "ft_convert: wrote " << ft::peft_type_name(run.peft.method) << " adapter to " << out
            << "\n";
}

void merge(const std::string& checkpoint, const std::string& out) {
  if (std::filesystem::exists(out))
    ft::fail("--out {} exists: ft_convert does not overwrite files", out);
  ft::RunParameters run = ft::load_run_parameters(checkpoint, threads());
  if (run.peft.method != ft::PeftMethod::lora)
    ft::fail("{} holds a {} adapter: only LoRA merges into the base weights", checkpoint,
             ft::peft_method_name(run.peft.method));
  ft::merge_lora(run.peft, *run.params);
  ft::save_base_weights(out, *run.params, run.config, run.model.summary());
  std::cout << "ft_convert: merged " << run.peft.lora_targets.size() << " LoRA modules into " << out
            << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ft_convert: export ft adapters to Hugging Face PEFT, merge LoRA into the base."};
  app.require_subcommand(1);
  std::string checkpoint, out, base_name;
  CLI::App* exporter =
      app.add_subcommand("export-adapter", "ft adapter checkpoint -> Hugging Face PEFT folder");
  exporter->add_option("--checkpoint", checkpoint, "ft adapter checkpoint (.h5)")->required();
  exporter->add_option("--out", out, "Folder to write")->required();
  exporter->add_option("--base-name", base_name,
                       "base_model_name_or_path to record (default: the run's base description)");
  CLI::App* merger = app.add_subcommand("merge-lora", "LoRA adapter checkpoint -> merged model");
  merger->add_option("--checkpoint", checkpoint, "ft LoRA adapter checkpoint (.h5)")->required();
  merger->add_option("--out", out, "Full checkpoint to write (.h5)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    if (exporter->parsed()) export_adapter(checkpoint, out, base_name);
    if (merger->parsed()) merge(checkpoint, out);
  } catch (const ft::Error& error) {
    std::cerr << "ft_convert: error: " << error.what() << std::endl;
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "ft_convert: unexpected error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
