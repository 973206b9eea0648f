#pragma once
// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434):
//   c_q = x W_dq (d x r_q), Q = c_q W_uq;  c_kv = x W_dkv (d x r_kv), K = c_kv W_uk, V = c_kv W_uv.
// q_rank = 0 projects queries directly. Latent keys cannot be rotated without losing the
// absorption of W_uk into the query, so RoPE goes through a decoupled part of width rope_dim:
// a per-head rotary query c_q W_qr and one rotary key x W_kr shared by all heads, concatenated
// to Q and K. A KV cache holds c_kv and the rotary key: r_kv + rope_dim floats per token.
#include "vitlab/attention/attention.h"

namespace vitlab {

class MlaImpl : public AttentionImpl {
 public:
  MlaImpl(const AttentionDims& dims, int64_t q_rank, int64_t kv_rank, int64_t rope_dim);
  Projected project(const torch::Tensor& x, const Rope2d* rope) override;
  torch::Tensor combine(const torch::Tensor& o) override;
  int64_t parameter_count() const override;
  int64_t kv_floats_per_token() const override;
  double flops_per_token(int64_t n) const override;
  json describe() const override;
  bool reads_input_through_linear() const override { return true; }  // down-projections, k_rope

  AttentionDims dims;
  int64_t q_rank, kv_rank, rope_dim;
  Linear q_down{nullptr};  // d -> r_q (W_dq), absent when q_rank = 0
  Linear q_up{nullptr};    // r_q -> h d_h (W_uq), or d -> h d_h when q_rank = 0
  Linear kv_down{nullptr}; // d -> r_kv (W_dkv)
  Linear kv_up{nullptr};   // r_kv -> 2 h d_h, rows [W_uk; W_uv]
  Linear q_rope{nullptr};  // r_q (or d) -> h rope_dim (W_qr), only with rope_dim > 0
  Linear k_rope{nullptr};  // d -> rope_dim (W_kr), only with rope_dim > 0
  Linear proj{nullptr};    // h d_h -> d (W_o)
};

AttentionPtr make_mla(const AttentionConfig& cfg, const AttentionDims& dims);

}  // namespace vitlab
