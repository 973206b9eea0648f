#pragma once
// Attention registry: one name maps to one constructor (timm-style). Variants validate their
// own options and fail with the option's key path.
#include <string>
#include <vector>

#include "vitlab/attention/attention.h"

namespace vitlab {

AttentionPtr make_attention(const AttentionConfig& cfg, const AttentionDims& dims);
std::vector<std::string> attention_names();

}  // namespace vitlab
