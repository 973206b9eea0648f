#pragma once
// The fuzz targets: each hands outside bytes to one of vitlab's parsers as the apps call it
// (written to a scratch file first where the parser takes a path). A vitlab::Error, the clear
// one-line refusal, is a correct answer; any other exception, a crash, a hang or an allocation
// far beyond the input's size is a bug. tests/fuzz/CMakeLists.txt builds one libFuzzer
// executable per target (clang, scripts/fuzz.sh), and the test suite replays the committed
// corpus, tests/fuzz/corpus/NAME/, through the same functions (tests/test_fuzz.cpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vitlab::fuzz {

struct Target {
  std::string name;
  void (*run)(const uint8_t* data, size_t size);
};

const std::vector<Target>& targets();
const Target& target(const std::string& name);

}  // namespace vitlab::fuzz
