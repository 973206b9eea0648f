#pragma once
// Bilinear block-tensor-train scoring (arXiv 2509.07963, as read in DESIGN section 4; BTT after
// Qiu et al., "Compute Better Spent"). Each head scores with a full-rank bilinear form
// s_ij = x_i^T W x_j, W a rank-r BTT matrix, instead of MHA's rank-d_h W_q W_k^T. With d = m1 m2
// and x viewed as an (m1 x m2) matrix x[a,b]:
//   q[b,c,s] = sum_a x[a,b] L[b,a,c,s]      (L: m2 x m1 x m1 x r)
//   k[b,c,s] = sum_e R[c,b,s,e] x[c,e]      (R: m1 x m2 x r x m2)
// so q . k = x^T W x' with W[(a,b),(c,e)] = sum_s L[b,a,c,s] R[c,b,s,e]: a plain dot product of
// width d r, which runs on the fused kernel (few, wide heads). Values and output are as in MHA.
// Two ways to compute q and k give the same numbers: "factored" contracts x with L and R as above
// (d r m1 and d r m2 multiply-adds per head and token); "dense" assembles the block-sparse
// matrices of both maps and runs one product (d r d each), more work but faster on a GPU;
// "auto" picks dense on CUDA, factored on the CPU.
#include <string>

#include "vitlab/attention/attention.h"

namespace vitlab {

class BttImpl : public AttentionImpl {
 public:
  BttImpl(const AttentionDims& dims, int64_t m1, int64_t rank, std::string projection);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool uses_dense(const torch::Device& device) const;  // the projection project() takes there
  torch::Tensor dense_qk_weight() const;               // (2 h d r, d): W_q stacked over W_k

  AttentionDims dims;
  int64_t m1, m2, rank;
  std::string projection;           // auto, dense or factored
  torch::Tensor L;                  // (h, m2, m1, m1, r): L[i, b, a, c, s]
  torch::Tensor R;                  // (h, m1, m2, r, m2): R[i, c, b, s, e]
  Linear v{nullptr};     // d -> h d_h (W_v)
  Linear proj{nullptr};  // h d_h -> d (W_o)
};

AttentionPtr make_btt(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
