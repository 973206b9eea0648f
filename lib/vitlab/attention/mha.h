#pragma once
// Multi-head attention (Vaswani et al.), with timm's fused qkv projection.
#include "vitlab/attention/attention.h"

namespace vitlab {

class MhaImpl : public AttentionImpl {
 public:
  explicit MhaImpl(const AttentionDims& dims);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool reads_input_through_linear() const override { return true; }

  AttentionDims dims;
  Linear qkv{nullptr};   // d -> 3 h d_h, rows ordered [W_q; W_k; W_v], each head-major
  Linear proj{nullptr};  // h d_h -> d (W_o)
};

AttentionPtr make_mha(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
