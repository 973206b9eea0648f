#pragma once
// Talking-heads attention (Shazeer, Lan, Cheng, Ding, Hou 2020, arXiv:2003.02436, eq. 3-5):
// multi-head attention whose heads exchange information twice, by learned h x h mixing
// matrices on the logits before the softmax (P_l) and on the weights after it (P_w):
//
//   L[b, j] = sum_i P_l[i, j] (q_i k_i^T) / sqrt(d_h),   W[b, j] = sum_i P_w[i, j] softmax(L)[b, i],
//   out_j = W[b, j] v_j,  then the output projection as in MHA.
//
// With P_l = P_w = I (the initialisation here) it is MHA exactly. The mixing across heads comes
// between the scores and the softmax, so no fused attention kernel computes it: the scores are
// materialised (B, h, N, N).
#include <vitlab/attention/attention.h>

namespace talking_heads {

class TalkingHeadsImpl : public vitlab::AttentionImpl {
 public:
  explicit TalkingHeadsImpl(const vitlab::AttentionDims& dims);
  torch::Tensor forward(const torch::Tensor& x, const vitlab::Rope2d* rope = nullptr) override;
  torch::Tensor scores(const torch::Tensor& x, const vitlab::Rope2d* rope = nullptr) override;
  vitlab::Projected project(const torch::Tensor& x, const vitlab::Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  vitlab::json describe() const override;

  vitlab::AttentionDims dims;
  vitlab::Linear qkv{nullptr};   // d -> 3 h d_h, as MHA's (timm's names)
  vitlab::Linear proj{nullptr};  // h d_h -> d
  torch::Tensor logits_mix;      // P_l (h, h): logits of head i feed mixed head j with weight [i, j]
  torch::Tensor weights_mix;     // P_w (h, h)
};

vitlab::AttentionPtr make_talking_heads(const vitlab::AttentionConfig& cfg, const vitlab::AttentionDims& dims);

}  // namespace talking_heads
