// Precompiled header of the library, the apps and the tests: LibTorch dominates build time.
#include <torch/torch.h>
#include <nlohmann/json.hpp>
