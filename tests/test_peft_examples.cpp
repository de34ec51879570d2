// The users' PEFT workflow end to end (examples/peft/run.sh): the quickstart base is trained, then
// tuned with each method on 40 examples; every adapter's validation loss must end clearly below
// the frozen base's on the 12 held-out examples.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/temp_dir.h"

namespace ft {
namespace {

TEST(PeftExamples, EveryMethodSteersTheFrozenQuickstartModel) {
  testing::TempDir dir;
  const std::string command = std::string("cd ") + FT_SOURCE_DIR + " && FT_TRAIN=" + FT_TRAIN_EXE +
                              " RUNS=" + dir.path() + " bash examples/peft/run.sh 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe)) output += buffer;
  ASSERT_EQ(pclose(pipe), 0) << output;

  // The table's rows: "<method> <valid loss> ..."
  std::map<std::string, double> loss;
  std::istringstream table(output.substr(output.find("validation loss on")));
  for (std::string line; std::getline(table, line);) {
    for (const char* method :
         {"frozen base", "prompt_tuning", "prefix_tuning", "p_tuning", "lora"}) {
      if (line.rfind(method, 0) == 0) loss[method] = std::stod(line.substr(14));
    }
  }
  ASSERT_EQ(loss.size(), 5u) << output;
  for (const char* method : {"prompt_tuning", "prefix_tuning", "p_tuning", "lora"})
    EXPECT_LT(loss[method], loss["frozen base"] - 0.2) << method << "\n" << output;
}

}  // namespace
}  // namespace ft
