#pragma once
// Grouped-query attention (Ainslie et al., 2023): h query heads share g key/value heads, query
// head i reading key/value head floor(i g / h). g = h is MHA, g = 1 is multi-query attention
// (Shazeer, 2019).
#include "vitlab/attention/attention.h"

namespace vitlab {

class GqaImpl : public AttentionImpl {
 public:
  GqaImpl(const AttentionDims& dims, int64_t kv_heads, std::string name);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool reads_input_through_linear() const override { return true; }

  AttentionDims dims;
  int64_t kv_heads;
  std::string name;                 // "gqa" or "mqa"
  Linear q{nullptr};     // d -> h d_h (W_q, head-major)
  Linear kv{nullptr};    // d -> 2 g d_h, rows [W_k; W_v]
  Linear proj{nullptr};  // h d_h -> d (W_o)
};

AttentionPtr make_gqa(const AttentionConfig& cfg, const AttentionDims& dims);
AttentionPtr make_mqa(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
