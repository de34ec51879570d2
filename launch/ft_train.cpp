// ft_train: fine-tune (or train from scratch) a decoder-only transformer from a run config.
//   ft_train --config run.yaml [--resume | --resume-from PATH] [key=value ...]
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"ft_train: fine-tune a decoder-only language model from a run config."};
  std::string config_path;
  std::string resume_from;
  bool resume_latest = false;
  std::vector<std::string> overrides;
  app.add_option("-c,--config", config_path, "Run config: YAML, JSON or protobuf text format")
      ->required();
  auto* latest = app.add_flag("--resume", resume_latest,
                              "Continue the run from the newest checkpoint in its output_dir");
  app.add_option("--resume-from", resume_from, "Continue a run from this checkpoint file")
      ->excludes(latest);
  app.add_option("overrides", overrides, "Config overrides such as optim.lr=1e-4");
  app.footer("Config fields (set in the file or as field=value):\n" + ft::config::help_text());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    ft::TrainerOptions options;
    options.config = ft::config::load_file(config_path);
    for (const std::string& assignment : overrides)
      ft::config::apply_override(options.config, assignment);
    options.resume = resume_latest ? "latest" : resume_from;
    ft::Trainer trainer(std::move(options));
    trainer.run();
  } catch (const ft::Error& error) {
    std::cerr << "ft_train: error: " << error.what() << std::endl;
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "ft_train: unexpected error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
