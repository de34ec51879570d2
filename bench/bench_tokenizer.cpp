// Tokenizer throughput of HfTokenizer on one core, next to the `tokenizers` library's figures that
// bench/tokenizer_peer.py wrote into the same folder:
//
//   python3 bench/tokenizer_peer.py --out /tmp/tokbench     # corpus, tokenizers, peer figures
//   build/bin/bench_tokenizer /tmp/tokbench [--passes 3]
//
// For each <kind>/tokenizer.json it encodes every document of documents.json, one call each,
// and prints MB per second of the first pass (cold word cache) and of the best pass, tokens, and
// whether the ids equal tokenizers' (ids.bin). Seconds are the thread's CPU time on both sides
// (CLOCK_THREAD_CPUTIME_ID here, time.thread_time() in the peer), so that other work on a shared
// machine does not skew the comparison. Prints figures; asserts nothing.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/data/hf_tokenizer.h"
#include "runtime/error.h"

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) ft::fail("{}: cannot open", path.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::vector<int32_t> read_ids(const std::filesystem::path& path) {
  const std::string bytes = read_file(path);
  std::vector<int32_t> ids(bytes.size() / sizeof(int32_t));
  std::memcpy(ids.data(), bytes.data(), ids.size() * sizeof(int32_t));
  return ids;
}

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"HfTokenizer encode throughput on one core, next to the tokenizers library"};
  std::string folder;
  int passes = 3;
  app.add_option("folder", folder, "the --out folder of bench/tokenizer_peer.py")->required();
  app.add_option("--passes", passes, "passes over the corpus (the first one has a cold cache)")
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  try {
    const std::filesystem::path root(folder);
    const auto documents =
        nlohmann::json::parse(read_file(root / "documents.json")).get<std::vector<std::string>>();
    double megabytes = 0;
    for (const std::string& document : documents) megabytes += document.size() / 1e6;
    fmt::print("corpus: {} documents, {:.2f} MB; one thread, MB per CPU-second\n", documents.size(),
               megabytes);
    fmt::print("{:8} {:>9} {:>11} {:>11} {:>13} {:>13}  {}\n", "kind", "tokens", "ft first",
               "ft best", "peer first", "peer best", "ids equal to tokenizers");
    for (const std::string kind : {"gpt2", "llama3", "qwen2", "llama2"}) {
      if (!std::filesystem::exists(root / kind / "tokenizer.json")) continue;
      auto tokenizer = ft::data::HfTokenizer::load(root / kind / "tokenizer.json");
      std::vector<double> seconds;
      std::vector<int32_t> ids;
      for (int pass = 0; pass < passes; ++pass) {
        std::vector<int32_t> pass_ids;
        pass_ids.reserve(ids.size());
        const double start = thread_cpu_seconds();
        for (const std::string& document : documents) {
          const std::vector<int32_t> document_ids = tokenizer->encode(document);
          pass_ids.insert(pass_ids.end(), document_ids.begin(), document_ids.end());
        }
        seconds.push_back(thread_cpu_seconds() - start);
        ids = std::move(pass_ids);
      }
      const nlohmann::json peer = nlohmann::json::parse(read_file(root / kind / "peer.json"));
      const bool equal = ids == read_ids(root / kind / "ids.bin");
      fmt::print("{:8} {:9} {:>6.2f} MB/s {:>6.2f} MB/s {:>8.2f} MB/s {:>8.2f} MB/s  {}\n", kind,
                 ids.size(), megabytes / seconds.front(),
                 megabytes / *std::min_element(seconds.begin(), seconds.end()),
                 peer.at("first_pass_mb_per_s").get<double>(),
                 peer.at("best_mb_per_s").get<double>(), equal ? "yes" : "NO");
    }
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench_tokenizer: {}\n", error.what());
    return 1;
  }
  return 0;
}
