// libFuzzer's entry point for one target; CMake defines DOG_FUZZ_ENTRY (tests/fuzz/CMakeLists.txt).
#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return DOG_FUZZ_ENTRY(data, size); }
