#pragma once
// Tensor product attention (Zhang et al., arXiv 2501.06425, "T6"): each token's queries, keys
// and values are (h x d_h) matrices of low tensor rank,
//   Q_t = (1/R_q) sum_r a_r(x_t) (outer) b_r(x_t),  a_r = x W_aq[r] (h),  b_r = x W_bq[r] (d_h),
// and likewise K (rank R_k) and V (rank R_v). RoPE rotates the b factors of Q and K (a
// rotation of the d_h axis commutes with the sum). A KV cache holds the factors of K and V:
// (R_k + R_v)(h + d_h) floats per token.
#include "vitlab/attention/attention.h"

namespace vitlab {

class TpaImpl : public AttentionImpl {
 public:
  TpaImpl(const AttentionDims& dims, int64_t q_rank, int64_t k_rank, int64_t v_rank);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool reads_input_through_linear() const override { return true; }  // one product for all factors

  AttentionDims dims;
  int64_t q_rank, k_rank, v_rank;
  // W_a (d, R h) and W_b (d, R d_h) per role, column r h + i (resp. r d_h + j).
  torch::Tensor a_q, b_q, a_k, b_k, a_v, b_v;
  Linear proj{nullptr};  // h d_h -> d (W_o)
};

AttentionPtr make_tpa(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
