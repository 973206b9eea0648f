#include "vitlab/attention/mha.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"

namespace vitlab {

MhaImpl::MhaImpl(const AttentionDims& d) : dims(d) {
  const int64_t inner = d.heads * d.head_dim;
  qkv = register_module("qkv", Linear(torch::nn::LinearOptions(d.dim, 3 * inner).bias(d.qkv_bias)));
  proj = register_module("proj", Linear(inner, d.dim));
}

Projected MhaImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  auto qkv_ = split_heads(qkv(x), 3, dims.heads);  // 3 x (B, h, N, d_h)
  torch::Tensor q = qkv_[0], k = qkv_[1];
  if (rope) q = rope->rotate(q), k = rope->rotate(k);
  return {q, k, qkv_[2], 1.0 / std::sqrt(static_cast<double>(dims.head_dim))};
}

torch::Tensor MhaImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t MhaImpl::parameter_count() const {
  const int64_t inner = dims.heads * dims.head_dim;
  return 4 * dims.dim * inner + (dims.qkv_bias ? 3 * inner : 0) + dims.dim;
}

int64_t MhaImpl::kv_floats_per_token() const { return 2 * dims.heads * dims.head_dim; }

double MhaImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, inner = dims.heads * dims.head_dim;
  return 2.0 * d * 3 * inner      // q, k, v projections
         + 2.0 * 2 * n * inner    // scores and the weighted sum of values
         + 2.0 * inner * d;       // output projection
}

json MhaImpl::describe() const {
  return json{{"name", "mha"}, {"heads", dims.heads}, {"head_dim", dims.head_dim}, {"kernel", sdpa_path()}};
}

AttentionPtr make_mha(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options(cfg).finish();  // MHA takes no options
  require_rope_width(dims, dims.head_dim, "model.head_dim (d_h)");
  return std::make_shared<MhaImpl>(dims);
}

}  // namespace vitlab
