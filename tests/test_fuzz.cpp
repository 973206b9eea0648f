// Replays the committed fuzz corpus, tests/fuzz/corpus/TARGET/, through every fuzz target
// (tests/fuzz/targets.h): each input the fuzzers kept, the ones that once crashed vitlab among
// them, must end in a result or a one-line vitlab::Error; under the sanitizer build
// (scripts/test.sh --sanitize) also without a memory or undefined-behaviour error.
#include <gtest/gtest.h>

#include "fuzz/targets.h"
#include "vitlab/io/files.h"

namespace {

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const auto& t : vitlab::fuzz::targets()) names.push_back(t.name);
  return names;
}

class FuzzCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzCorpus, EveryInputEndsInAResultOrAnError) {
  const auto& target = vitlab::fuzz::target(GetParam());
  const std::string dir = vitlab::join_path(VITLAB_FUZZ_CORPUS, GetParam());
  const auto files = vitlab::list_directory(dir);
  ASSERT_GE(files.size(), 5u) << dir << ": the corpus is missing (scripts/fuzz.sh makes it)";
  for (const auto& name : files) {
    const std::string bytes = vitlab::read_text(vitlab::join_path(dir, name));
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn(target_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
