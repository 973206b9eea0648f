#pragma once
// Equal-budget ablations: choose a variant's size so that its attention parameters per layer
// land nearest a target. Each variant has one size knob: gqa kv_heads (a divisor of h), mla
// kv_rank (q_rank kept), tucker the common rank r = q = k = v = o (head ranks kept).
#include "vitlab/attention/attention.h"

namespace vitlab {

struct MatchResult {
  AttentionConfig attention;
  int64_t params;  // attention parameters per layer
};

MatchResult match_attention_params(const AttentionConfig& base, const AttentionDims& dims, int64_t target);

}  // namespace vitlab
