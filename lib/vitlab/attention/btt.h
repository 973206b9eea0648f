#pragma once
// Bilinear block-tensor-train scoring (arXiv 2509.07963, as read in DESIGN section 4; BTT after
// Qiu et al., "Compute Better Spent"). Each head scores with a full-rank bilinear form
// s_ij = x_i^T W x_j, W a rank-r BTT matrix, instead of MHA's rank-d_h W_q W_k^T. With d = m1 m2
// and x viewed as an (m1 x m2) matrix x[a,b]:
//   q[b,c,s] = sum_a x[a,b] L[b,a,c,s]      (L: m2 x m1 x m1 x r)
//   k[b,c,s] = sum_e R[c,b,s,e] x[c,e]      (R: m1 x m2 x r x m2)
// so q . k = x^T W x' with W[(a,b),(c,e)] = sum_s L[b,a,c,s] R[c,b,s,e]: a plain dot product of
// width d r, which runs on the fused kernel (few, wide heads). Values and output are as in MHA.
#include "vitlab/attention/attention.h"

namespace vitlab {

class BttImpl : public AttentionImpl {
 public:
  BttImpl(const AttentionDims& dims, int64_t m1, int64_t rank);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;

  AttentionDims dims;
  int64_t m1, m2, rank;
  torch::Tensor L;                  // (h, m2, m1, m1, r): L[i, b, a, c, s]
  torch::Tensor R;                  // (h, m1, m2, r, m2): R[i, c, b, s, e]
  Linear v{nullptr};     // d -> h d_h (W_v)
  Linear proj{nullptr};  // h d_h -> d (W_o)
};

AttentionPtr make_btt(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
