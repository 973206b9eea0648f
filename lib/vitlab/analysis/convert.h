#pragma once
// Exact conversions between attention variants (DESIGN section 4, "special cases"): Tucker
// attention reproduces MHA, GQA / MQA and MLA (without decoupled RoPE) from their weights.
// The target must have the ranks tucker_ranks_for(...) returns. The sources' input
// projections must have no bias (a bias is not a bilinear form); the output bias carries over.
#include "vitlab/attention/gqa.h"
#include "vitlab/attention/mha.h"
#include "vitlab/attention/mla.h"
#include "vitlab/attention/tucker.h"

namespace vitlab {

TuckerRanks tucker_ranks_for(const MhaImpl& m);  // (h, d, h d_h), (h, h d_h, d)
TuckerRanks tucker_ranks_for(const GqaImpl& m);  // (h, d, g d_h), (h, g d_h, d)
TuckerRanks tucker_ranks_for(const MlaImpl& m);  // (h, r_q or d, r_kv), (h, r_kv, d)
void tucker_from(TuckerImpl& t, const MhaImpl& m);
void tucker_from(TuckerImpl& t, const GqaImpl& m);
void tucker_from(TuckerImpl& t, const MlaImpl& m);
// GQA with g = h holding the weights of an MHA layer.
void gqa_from(GqaImpl& g, const MhaImpl& m);

}  // namespace vitlab
