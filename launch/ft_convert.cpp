// ft_convert: move models and adapters between ft and Hugging Face.
//   ft_convert import-hf --hf DIR --out MODEL.h5 [--files-out FILES_DIR]
//       a Hugging Face model folder (config.json + model.safetensors or a sharded index; fp32,
//       fp16 or bf16) -> an ft full checkpoint, usable as model.init_from (alone: it records its
//       config.json). config.json and the tokenizer files go to FILES_DIR (default: MODEL_hf/
//       beside MODEL.h5).
//   ft_convert export-hf --checkpoint X.h5 --out DIR [--dtype fp32|fp16|bf16]
//                        [--max-shard-size 5GB]
//       an ft full checkpoint (from ft_train, import-hf or merge-lora), or a LoRA adapter
//       checkpoint (merged into its base) -> a Hugging Face model folder. The dtype defaults to
//       the one the model came in (fp32 for a model of no Hugging Face origin).
//   ft_convert export-adapter --checkpoint ADAPTER.h5 --out DIR
//       an ft adapter checkpoint -> a Hugging Face PEFT folder (adapter_config.json +
//       adapter_model.safetensors) that peft.PeftModel.from_pretrained loads
//   ft_convert merge-lora --checkpoint ADAPTER.h5 [--out MERGED.h5] [--hf-out DIR]
//       a LoRA adapter checkpoint -> the base with W + scale * B A: an ft full checkpoint and/or a
//       Hugging Face model folder
//   ft_convert import-adapter --peft DIR --config run.yaml --out ADAPTER.h5
//       a Hugging Face PEFT folder -> an ft adapter checkpoint on the base that run.yaml names
//       (ft_train's peft.init_from also takes the folder directly)
// Nothing is overwritten, and a failed conversion leaves no partial output.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "kernels/context.h"
#include "models/hf_export.h"
#include "models/hf_weights.h"
#include "models/param_layout.h"
#include "models/peft/lora_merge.h"
#include "models/peft/peft_interchange.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/train_state.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void refuse_existing(const std::string& path, const char* option) {
  if (fs::exists(path))
    ft::fail("{} {} exists: ft_convert does not overwrite files or folders", option, path);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ft::fail("{}: cannot open", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string absolute(const std::string& path) {
  return fs::absolute(path).lexically_normal().string();
}

// The Hugging Face files an ft model goes back out with: config.json (empty: generate one), the
// dtype each tensor came in, and the tokenizer files (source path -> name in the folder).
struct HfOrigin {
  std::string config_json;
  std::map<std::string, std::string> source_dtypes;
  std::map<std::string, std::string> side_files;
};

void add_side_files(HfOrigin& origin, const std::string& folder) {
  if (folder.empty() || !fs::is_directory(folder)) return;
  for (const std::string& file : ft::hf_side_files(folder))
    origin.side_files.emplace(fs::path(file).filename().string(), file);
}

// The origin of an ft checkpoint written by import-hf (its root attributes).
bool imported_origin(const ft::checkpoint::CheckpointReader& reader, HfOrigin& origin) {
  if (!reader.has_attribute("hf_config_json")) return false;
  if (origin.config_json.empty()) origin.config_json = reader.string_attribute("hf_config_json");
  if (origin.source_dtypes.empty()) {
    const json dtypes = json::parse(reader.string_attribute("hf_tensor_dtypes"), nullptr, false);
    if (dtypes.is_object())
      for (const auto& [name, dtype] : dtypes.items())
        if (dtype.is_string()) origin.source_dtypes[name] = dtype.get<std::string>();
  }
  if (reader.has_attribute("hf_files")) add_side_files(origin, reader.string_attribute("hf_files"));
  return true;
}

// Where the model of a run came from: model.hf_config, model.init_from (a Hugging Face folder or
// file, a checkpoint from import-hf, or another run's checkpoint, followed back) and
// data.tokenizer.
void add_run_origin(const ft::config::RunConfig& config, const ft::ModelConfig& model,
                    HfOrigin& origin, int depth) {
  const ft::config::ModelConfig& m = config.model();
  if (!m.hf_config().empty()) {
    const std::string file = ft::hf_config_file(m.hf_config());
    if (fs::is_regular_file(file)) {
      if (origin.config_json.empty()) origin.config_json = read_text(file);
      add_side_files(origin, fs::path(file).parent_path().string());
    }
  }
  const std::string& init_from = m.init_from();
  if (!init_from.empty() && fs::exists(init_from)) {
    const std::string extension = fs::path(init_from).extension().string();
    if (fs::is_directory(init_from) || extension == ".safetensors" || extension == ".json") {
      if (origin.source_dtypes.empty())
        origin.source_dtypes = ft::hf_tensor_dtypes(init_from, model);
      const std::string folder =
          fs::is_directory(init_from) ? init_from : fs::path(init_from).parent_path().string();
      const std::string file = ft::hf_config_file(folder);
      if (origin.config_json.empty() && fs::is_regular_file(file))
        origin.config_json = read_text(file);
      add_side_files(origin, folder);
    } else if (depth < 8) {
      const ft::checkpoint::CheckpointReader reader(init_from);
      if (!imported_origin(reader, origin) && reader.has_attribute("config"))
        add_run_origin(ft::config::from_text(reader.string_attribute("config"), init_from), model,
                       origin, depth + 1);
    }
  }
  const std::string& tokenizer = config.data().tokenizer();
  if (!tokenizer.empty() && fs::is_regular_file(tokenizer))
    origin.side_files.emplace("tokenizer.json", tokenizer);
}

// The dtype shared by every tensor, or "" when they differ (or none is known).
std::string uniform_dtype(const std::map<std::string, std::string>& dtypes) {
  std::string shared;
  for (const auto& [name, dtype] : dtypes) {
    if (!shared.empty() && dtype != shared) return "";
    shared = dtype;
  }
  return shared;
}

struct ExportOptions {
  std::string dtype;  // "" or F32 / F16 / BF16
  int64_t max_shard_bytes = 0;
};

// Stages `out` with config.json (the origin's, or one generated for `model` when given) and the
// tokenizer files; returns the staged config.json's path.
std::string stage_config(ft::StagedFolder& folder, const HfOrigin& origin,
                         const ft::ModelConfig* model, const ExportOptions& options) {
  std::string dtype = options.dtype.empty() ? uniform_dtype(origin.source_dtypes) : options.dtype;
  if (dtype.empty() && origin.source_dtypes.empty()) dtype = "F32";
  std::string text = origin.config_json;
  if (text.empty()) {
    if (model == nullptr) ft::fail("{}: no config.json is known for this model", folder.dir());
    text = ft::hf_config_json(*model, ft::hf_torch_dtype(dtype.empty() ? "F32" : dtype));
  } else if (!dtype.empty()) {
    text = ft::patch_hf_config_json(text, ft::hf_torch_dtype(dtype),
                                    model ? model->max_position_embeddings : 0);
  }
  folder.write_text("config.json", text);
  for (const auto& [name, source] : origin.side_files) {
    std::error_code error;
    fs::copy_file(source, folder.path(name), error);
    if (error) ft::fail("{}: cannot copy {} into it: {}", folder.dir(), source, error.message());
  }
  return folder.path("config.json");
}

void write_weights(ft::StagedFolder& folder, const ft::ModelConfig& model,
                   const ft::ParameterStore& params, const HfOrigin& origin,
                   const ExportOptions& options) {
  ft::HfWeightOptions weights;
  weights.dtype = options.dtype;
  weights.source_dtypes = origin.source_dtypes;
  weights.max_shard_bytes = options.max_shard_bytes;
  ft::write_hf_weights(folder.path(""), model, params, weights);
}

// A run's parameters, staged as a Hugging Face folder (committed by the caller).
void stage_run_export(ft::StagedFolder& folder, const ft::RunParameters& run,
                      const ExportOptions& options) {
  HfOrigin origin;
  add_run_origin(run.config, run.model, origin, 0);
  const std::string config_path = stage_config(folder, origin, &run.model, options);
  ft::check_hf_config_matches(config_path, run.model);
  write_weights(folder, run.model, *run.params, origin, options);
}

void import_hf(const std::string& hf, const std::string& out, std::string files_out) {
  if (!fs::is_directory(hf))
    ft::fail(
        "--hf {}: not a folder (expected a Hugging Face model folder: config.json + "
        "model.safetensors or model.safetensors.index.json)",
        hf);
  const std::string config_path = ft::hf_config_file(hf);
  if (!fs::is_regular_file(config_path)) ft::fail("--hf {}: the folder holds no config.json", hf);
  refuse_existing(out, "--out");
  if (files_out.empty())
    files_out = (fs::path(out).parent_path() / (fs::path(out).stem().string() + "_hf")).string();
  refuse_existing(files_out, "--files-out");

  // Every check (config, names, shapes, shard files, headers) runs before anything is written.
  const ft::ModelConfig model = ft::model_config_from_hf(config_path);
  const std::map<std::string, std::string> dtypes = ft::hf_tensor_dtypes(hf, model);
  // bf16 stays bf16 (half the size); fp16 and mixed checkpoints are held in fp32 (exact).
  const ft::DType dtype = uniform_dtype(dtypes) == "BF16" ? ft::DType::bf16 : ft::DType::f32;
  ft::ParameterStoreOptions values_only;
  values_only.gradients = values_only.moments = false;
  ft::ParameterStore params(ft::transformer_param_specs(model), dtype, ft::Device::cpu,
                            values_only);
  ft::load_hf_weights(hf, model, params);

  ft::StagedFolder files(files_out);
  files.copy_in(config_path);
  const std::vector<std::string> side_files = ft::hf_side_files(hf);
  for (const std::string& file : side_files) files.copy_in(file);

  // The run config it records names the copied config.json (and tokenizer), so that the
  // checkpoint alone is a model.init_from and ft_generate --model.
  ft::config::RunConfig run;
  run.mutable_model()->set_hf_config(absolute(files_out) + "/config.json");
  if (fs::is_regular_file(fs::path(hf) / "tokenizer.json"))
    run.mutable_data()->set_tokenizer(absolute(files_out) + "/tokenizer.json");
  json dtype_map(dtypes);
  ft::checkpoint::CheckpointWriter writer(out);
  for (const ft::Parameter& param : params.all())
    writer.write_tensor("model/" + param.spec.name, param.value);
  writer.set_attribute("format", std::string("ft-checkpoint-1"));  // a full checkpoint
  writer.set_attribute("step", int64_t{0});
  writer.set_attribute("config", ft::config::to_text(run));
  writer.set_attribute("model", model.summary());
  writer.set_attribute("hf_config_json", read_text(config_path));
  writer.set_attribute("hf_tensor_dtypes", dtype_map.dump());
  writer.set_attribute("hf_source", absolute(hf));
  writer.set_attribute("hf_files", absolute(files_out));
  writer.commit();
  try {
    files.commit();
  } catch (...) {
    std::error_code ignored;
    fs::remove(out, ignored);
    throw;
  }
  std::cout << "ft_convert: wrote " << model.summary() << " ("
            << params.frozen_count() + params.trainable_count() << " parameters, "
            << (uniform_dtype(dtypes).empty() ? "mixed" : uniform_dtype(dtypes)) << ") to " << out
            << "; config.json and " << side_files.size() << " tokenizer/generation file(s) to "
            << files_out << "\n";
}

ft::RunParameters merged_lora_run(const std::string& checkpoint) {
  ft::RunParameters run = ft::load_run_parameters(checkpoint, threads());
  if (run.peft.method != ft::PeftMethod::lora)
    ft::fail("{} holds a {} adapter: only LoRA merges into the base weights", checkpoint,
             ft::peft_method_name(run.peft.method));
  ft::merge_lora(run.peft, *run.params);
  return run;
}

void export_hf(const std::string& checkpoint, const std::string& out,
               const ExportOptions& options) {
  refuse_existing(out, "--out");
  if (!fs::is_regular_file(checkpoint))
    ft::fail("--checkpoint {}: no such file (expected an ft checkpoint .h5)", checkpoint);
  if (ft::is_adapter_checkpoint(checkpoint)) {
    ft::RunParameters run = merged_lora_run(checkpoint);
    ft::StagedFolder folder(out);
    stage_run_export(folder, run, options);
    folder.commit();
    std::cout << "ft_convert: merged " << run.peft.lora_targets.size()
              << " LoRA modules and wrote the model to " << out << "\n";
    return;
  }
  const ft::checkpoint::CheckpointReader reader(checkpoint);
  HfOrigin origin;
  if (!imported_origin(reader, origin)) {
    ft::RunParameters run = ft::load_run_parameters(checkpoint, threads());
    ft::StagedFolder folder(out);
    stage_run_export(folder, run, options);
    folder.commit();
    std::cout << "ft_convert: wrote " << run.model.summary() << " to " << out << "\n";
    return;
  }
  // From import-hf: the model is the config.json it records.
  ft::StagedFolder folder(out);
  const std::string config_path = stage_config(folder, origin, nullptr, options);
  ft::ModelConfig model;
  try {
    model = ft::model_config_from_hf(config_path);
  } catch (const ft::Error& error) {
    ft::fail("--checkpoint {}: the config.json it records: {}", checkpoint, error.what());
  }
  model.name = checkpoint;
  const bool bf16 = uniform_dtype(origin.source_dtypes) == "BF16";
  ft::ParameterStoreOptions values_only;
  values_only.gradients = values_only.moments = false;
  ft::ParameterStore params(ft::transformer_param_specs(model),
                            bf16 ? ft::DType::bf16 : ft::DType::f32, ft::Device::cpu, values_only);
  ft::load_training_checkpoint(checkpoint, params, /*with_optimizer=*/false);
  write_weights(folder, model, params, origin, options);
  folder.commit();
  std::cout << "ft_convert: wrote " << model.summary() << " to " << out << "\n";
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

void merge(const std::string& checkpoint, const std::string& out, const std::string& hf_out,
           const ExportOptions& options) {
  if (out.empty() && hf_out.empty())
    ft::fail("merge-lora: give --out (an ft checkpoint) and/or --hf-out (a Hugging Face folder)");
  if (!out.empty()) refuse_existing(out, "--out");
  if (!hf_out.empty()) refuse_existing(hf_out, "--hf-out");
  ft::RunParameters run = merged_lora_run(checkpoint);
  std::optional<ft::StagedFolder> folder;
  if (!hf_out.empty()) {
    folder.emplace(hf_out);
    stage_run_export(*folder, run, options);
  }
  if (!out.empty()) ft::save_base_weights(out, *run.params, run.config, run.model.summary());
  if (folder) {
    try {
      folder->commit();
    } catch (...) {
      std::error_code ignored;
      if (!out.empty()) fs::remove(out, ignored);
      throw;
    }
  }
  std::cout << "ft_convert: merged " << run.peft.lora_targets.size() << " LoRA modules into "
            << (out.empty() ? "" : out) << (out.empty() || hf_out.empty() ? "" : " and ")
            << (hf_out.empty() ? "" : hf_out) << "\n";
}

void import_adapter(const std::string& peft_dir, const std::string& config_path,
                    const std::string& out) {
  refuse_existing(out, "--out");
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
      "ft_convert: move models and adapters between ft and Hugging Face, merge LoRA into the "
      "base."};
  app.require_subcommand(1);
  std::string checkpoint, out, hf_out, base_name, peft_dir, config_path, hf_dir, files_out;
  std::string dtype, shard_size;
  auto export_flags = [&](CLI::App* command) {
    command->add_option("--dtype", dtype,
                        "Storage dtype: fp32 | fp16 | bf16 (default: the dtype the model came in, "
                        "else fp32)");
    command->add_option("--max-shard-size", shard_size,
                        "Split model.safetensors into shards of at most this size (e.g. 5GB, "
                        "200MB) with model.safetensors.index.json (default: one file)");
  };
  CLI::App* hf_importer =
      app.add_subcommand("import-hf", "Hugging Face model folder -> ft full checkpoint");
  hf_importer->add_option("--hf", hf_dir, "Hugging Face model folder")->required();
  hf_importer->add_option("--out", out, "ft checkpoint to write (.h5)")->required();
  hf_importer->add_option("--files-out", files_out,
                          "Folder for config.json and the tokenizer files (default: OUT's name "
                          "without .h5, plus _hf, beside it)");
  CLI::App* hf_exporter = app.add_subcommand(
      "export-hf", "ft full (or LoRA adapter) checkpoint -> Hugging Face model folder");
  hf_exporter->add_option("--checkpoint", checkpoint, "ft checkpoint (.h5)")->required();
  hf_exporter->add_option("--out", out, "Folder to write")->required();
  export_flags(hf_exporter);
  CLI::App* exporter =
      app.add_subcommand("export-adapter", "ft adapter checkpoint -> Hugging Face PEFT folder");
  exporter->add_option("--checkpoint", checkpoint, "ft adapter checkpoint (.h5)")->required();
  exporter->add_option("--out", out, "Folder to write")->required();
  exporter->add_option("--base-name", base_name,
                       "base_model_name_or_path to record (default: none)");
  CLI::App* merger = app.add_subcommand("merge-lora", "LoRA adapter checkpoint -> merged model");
  merger->add_option("--checkpoint", checkpoint, "ft LoRA adapter checkpoint (.h5)")->required();
  merger->add_option("--out", out, "Full ft checkpoint to write (.h5)");
  merger->add_option("--hf-out", hf_out, "Hugging Face model folder to write");
  export_flags(merger);
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
    ExportOptions options;
    if (!dtype.empty()) options.dtype = ft::hf_storage_dtype(dtype, "--dtype");
    if (!shard_size.empty())
      options.max_shard_bytes = ft::parse_byte_size(shard_size, "--max-shard-size");
    if (hf_importer->parsed()) import_hf(hf_dir, out, files_out);
    if (hf_exporter->parsed()) export_hf(checkpoint, out, options);
    if (exporter->parsed()) export_adapter(checkpoint, out, base_name);
    if (merger->parsed()) merge(checkpoint, out, hf_out, options);
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
