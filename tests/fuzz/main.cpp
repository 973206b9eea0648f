// libFuzzer's entry point for one target, named by VITLAB_FUZZ_TARGET (tests/fuzz/CMakeLists.txt
// builds one executable per target).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vitlab::fuzz::Target& t = vitlab::fuzz::target(VITLAB_FUZZ_TARGET);
  t.run(data, size);
  return 0;
}
