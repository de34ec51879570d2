// ft_convert: move trained adapters and models between ft and Hugging Face.
//   ft_convert export-adapter --checkpoint runs/x/checkpoints/step_000100.h5 --out DIR
//       an ft adapter checkpoint -> a Hugging Face PEFT folder (adapter_config.json +
//       adapter_model.safetensors) that peft.PeftModel.from_pretrained loads
//   ft_convert merge-lora --checkpoint ADAPTER.h5 --out MERGED.h5
//       a LoRA adapter checkpoint -> a full checkpoint of the base with W + scale * B A, usable as
//       model.init_from
//   ft_convert import-adapter --peft DIR --config run.yaml --out ADAPTER.h5
//       a Hugging Face PEFT folder -> an ft adapter checkpoint on the base that run.yaml names
//       (ft_train's peft.init_from also takes the folder directly)
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include "kernels/context.h"
#include "models/peft/lora_merge.h"
#include "models/peft/peft_interchange.h"
#include "runtime/config/config.h"
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
  info.base_model_name_or_path = base_name;  // empty: null, as PEFT writes for an unknown base
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

void import_adapter(const std::string& peft_dir, const std::string& config_path,
                    const std::string& out) {
  if (std::filesystem::exists(out))
    ft::fail("--out {} exists: ft_convert does not overwrite files", out);
  const ft::config::RunConfig config = ft::config::load_file(config_path);
  ft::config::validate(config);
  const ft::ModelConfig model = ft::resolve_model_config(config.model());
  const ft::PeftSpec spec = ft::resolve_peft_spec(config.peft(), model, config.data().seq_len());
  if (!spec.is_peft())
    ft::fail("{}: peft.method is full; set the adapter's method to import it", config_path);
  const ft::DType dtype = config.dtype() == "fp64" ? ft::DType::f64 : ft::DType::f32;
  ft::ParameterStore params(ft::run_param_specs(model, spec), dtype, ft::Device::cpu);
  params.initialize(config.seed());
  const std::string& base_path = config.model().init_from();
  if (!base_path.empty()) ft::load_init_weights(base_path, model, params, /*base_only=*/true);
  ft::BaseIdentity base;
  base.fingerprint = ft::base_fingerprint(params, threads());
  base.description =
      model.summary() + (base_path.empty() ? ", seeded random init" : ", " + base_path);
  ft::import_peft_adapter(peft_dir, spec, model, params, base.fingerprint);
  ft::TrainState state;
  state.seed = config.seed();
  ft::save_training_checkpoint(out, params, state, config, model.summary(), &base);
  std::cout << "ft_convert: wrote the " << ft::peft_method_name(spec.method) << " adapter of "
            << peft_dir << " to " << out << " (use it as peft.init_from)\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ft_convert: move adapters between ft and Hugging Face PEFT, merge LoRA into the base."};
  app.require_subcommand(1);
  std::string checkpoint, out, base_name, peft_dir, config_path;
  CLI::App* exporter =
      app.add_subcommand("export-adapter", "ft adapter checkpoint -> Hugging Face PEFT folder");
  exporter->add_option("--checkpoint", checkpoint, "ft adapter checkpoint (.h5)")->required();
  exporter->add_option("--out", out, "Folder to write")->required();
  exporter->add_option("--base-name", base_name,
                       "base_model_name_or_path to record (default: none)");
  CLI::App* merger = app.add_subcommand("merge-lora", "LoRA adapter checkpoint -> merged model");
  merger->add_option("--checkpoint", checkpoint, "ft LoRA adapter checkpoint (.h5)")->required();
  merger->add_option("--out", out, "Full checkpoint to write (.h5)")->required();
  CLI::App* importer =
      app.add_subcommand("import-adapter", "Hugging Face PEFT folder -> ft adapter checkpoint");
  importer->add_option("--peft", peft_dir, "PEFT adapter folder")->required();
  importer->add_option("--config", config_path, "Run config naming the base and the method")
      ->required();
  importer->add_option("--out", out, "Adapter checkpoint to write (.h5)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    if (exporter->parsed()) export_adapter(checkpoint, out, base_name);
    if (merger->parsed()) merge(checkpoint, out);
    if (importer->parsed()) import_adapter(peft_dir, config_path, out);
  } catch (const ft::Error& error) {
    std::cerr << "ft_convert: error: " << error.what() << std::endl;
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "ft_convert: unexpected error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
