#pragma once
// Tucker attention (arXiv 2603.30033, as read in DESIGN section 4): the per-head bilinear forms
// T_qk[i] = W_q^i W_k^i^T and T_ov[i] = W_v^i W_o^i (two h x d x d tensors) are factorised
// directly with multilinear ranks,
//   T_qk = G_qk x_1 S_qk x_2 U_q x_3 U_k,   T_ov = G_ov x_1 S_ov x_2 U_v x_3 U_o.
// MHA, GQA, MQA and MLA (without decoupled RoPE) are special cases (see analysis/convert.h).
// Forward: k = x U_k and v = x U_v are one key/value head shared by all h query heads
// q_i = (x U_q) M_i, M_i = sum_c S_qk[i,c] G_qk[c], so it runs on the fused kernel; RoPE rotates
// q_i and k in the r_k space. The output is sum_i o_i N_i U_o^T, N_i = sum_c S_ov[i,c] G_ov[c].
#include "vitlab/attention/attention.h"

namespace vitlab {

struct TuckerRanks {
  int64_t head_qk, q, k;  // (r_hqk, r_q, r_k): the score tensor
  int64_t head_ov, v, o;  // (r_hov, r_v, r_o): the value/output tensor
  json to_json() const;
};

class TuckerImpl : public AttentionImpl {
 public:
  TuckerImpl(const AttentionDims& dims, const TuckerRanks& ranks);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool reads_input_through_linear() const override { return true; }  // x [U_q U_k U_v]

  AttentionDims dims;
  TuckerRanks ranks;
  torch::Tensor U_q, U_k, U_v, U_o;  // (d, r_q), (d, r_k), (d, r_v), (d, r_o)
  torch::Tensor S_qk, S_ov;          // (h, r_hqk), (h, r_hov)
  torch::Tensor G_qk, G_ov;          // (r_hqk, r_q, r_k), (r_hov, r_v, r_o)
  torch::Tensor bias;                // (d): the output bias every ViT attention has
};

AttentionPtr make_tucker(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
