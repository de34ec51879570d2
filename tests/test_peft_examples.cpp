// The users' PEFT workflow end to end (examples/peft/run.sh): the quickstart base is trained, then
// tuned with each method on 40 examples; every adapter's validation loss must end clearly below
// the frozen base's on the 12 held-out examples.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "tests/support/python.h"
#include "tests/support/temp_dir.h"

namespace ft {
namespace {

TEST(PeftExamples, EveryMethodSteersTheFrozenQuickstartModel) {
  testing::TempDir dir;
  const testing::CommandResult run =
      testing::run_command(std::string("cd ") + FT_SOURCE_DIR + " && FT_TRAIN=" + FT_TRAIN_EXE +
                           " RUNS=" + dir.path() + " bash examples/peft/run.sh");
  const std::string& output = run.output;
  ASSERT_EQ(run.status, 0) << output;

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
