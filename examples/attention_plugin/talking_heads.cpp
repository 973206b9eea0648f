#include "talking_heads.h"

#include <vitlab/attention/options.h>
#include <vitlab/attention/registry.h>

#include <cmath>

namespace talking_heads {

TalkingHeadsImpl::TalkingHeadsImpl(const vitlab::AttentionDims& d) : dims(d) {
  const int64_t inner = d.heads * d.head_dim;
  qkv = register_module("qkv", vitlab::Linear(torch::nn::LinearOptions(d.dim, 3 * inner).bias(d.qkv_bias)));
  proj = register_module("proj", vitlab::Linear(inner, d.dim));
  logits_mix = register_parameter("logits_mix", torch::eye(d.heads));
  weights_mix = register_parameter("weights_mix", torch::eye(d.heads));
}

vitlab::Projected TalkingHeadsImpl::project(const torch::Tensor& x, const vitlab::Rope2d* rope) {
  auto parts = vitlab::split_heads(qkv(x), 3, dims.heads);  // 3 x (B, h, N, d_h)
  torch::Tensor q = parts[0], k = parts[1];
  if (rope) q = rope->rotate(q), k = rope->rotate(k);
  return {q, k, parts[2], 1.0 / std::sqrt(static_cast<double>(dims.head_dim))};
}

// Eq. 3: the logits of every head, mixed over heads by P_l.
torch::Tensor TalkingHeadsImpl::scores(const torch::Tensor& x, const vitlab::Rope2d* rope) {
  const vitlab::Projected p = project(x, rope);
  const torch::Tensor logits = torch::matmul(p.q, p.k.transpose(-2, -1)) * p.scale;  // (B, h, N, N)
  return torch::einsum("binm,ij->bjnm", {logits, logits_mix.to(logits.dtype())});  // (B, h, N, N)
}

torch::Tensor TalkingHeadsImpl::forward(const torch::Tensor& x, const vitlab::Rope2d* rope) {
  const vitlab::Projected p = project(x, rope);
  const torch::Tensor logits = torch::matmul(p.q, p.k.transpose(-2, -1)) * p.scale;  // (B, h, N, N)
  const torch::Tensor mixed = torch::einsum("binm,ij->bjnm", {logits, logits_mix.to(logits.dtype())});
  const torch::Tensor probs = torch::softmax(mixed, -1);                                   // eq. 4
  const torch::Tensor weights = torch::einsum("binm,ij->bjnm", {probs, weights_mix.to(probs.dtype())});  // eq. 5
  return combine(torch::matmul(weights, p.v));  // (B, h, N, d_h) -> (B, N, d)
}

torch::Tensor TalkingHeadsImpl::combine(const torch::Tensor& o) {
  return proj(vitlab::merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t TalkingHeadsImpl::parameter_count() const {
  const int64_t inner = dims.heads * dims.head_dim;
  return 4 * dims.dim * inner + (dims.qkv_bias ? 3 * inner : 0) + dims.dim + 2 * dims.heads * dims.heads;
}

int64_t TalkingHeadsImpl::kv_floats_per_token() const { return 2 * dims.heads * dims.head_dim; }

double TalkingHeadsImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, h = dims.heads, inner = dims.heads * dims.head_dim;
  return 2.0 * d * 3 * inner      // q, k, v projections
         + 2.0 * 2 * n * inner    // scores and the weighted sum of values
         + 2.0 * 2 * n * h * h    // the two mixings over heads, n entries per head and token each
         + 2.0 * inner * d;       // output projection
}

vitlab::json TalkingHeadsImpl::describe() const {
  return vitlab::json{{"name", "talking_heads"}, {"heads", dims.heads}, {"head_dim", dims.head_dim}, {"kernel", "composed"}};
}

vitlab::AttentionPtr make_talking_heads(const vitlab::AttentionConfig& cfg, const vitlab::AttentionDims& dims) {
  vitlab::Options(cfg).finish();  // no options: the mixings are h x h
  vitlab::require_rope_width(dims, dims.head_dim, "model.head_dim (d_h)");
  return std::make_shared<TalkingHeadsImpl>(dims);
}

}  // namespace talking_heads

// The one line that makes `talking_heads` a model.attention name in every vitlab app.
VITLAB_REGISTER_ATTENTION(talking_heads, talking_heads::make_talking_heads)
