#include "vitlab/attention/gqa.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

GqaImpl::GqaImpl(const AttentionDims& d, int64_t g, std::string n) : dims(d), kv_heads(g), name(std::move(n)) {
  const int64_t dh = d.head_dim;
  q = register_module("q", Linear(torch::nn::LinearOptions(d.dim, d.heads * dh).bias(d.qkv_bias)));
  kv = register_module("kv", Linear(torch::nn::LinearOptions(d.dim, 2 * g * dh).bias(d.qkv_bias)));
  proj = register_module("proj", Linear(d.heads * dh, d.dim));
}

Projected GqaImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, g = kv_heads, dh = dims.head_dim;
  auto q_ = q(x).view({B, N, h, dh}).transpose(1, 2);                 // (B, h, N, d_h)
  auto kv_ = split_heads(kv(x), 2, g);                                // 2 x (B, g, N, d_h)
  torch::Tensor k = kv_[0];
  if (rope) q_ = rope->rotate(q_), k = rope->rotate(k);
  // g key/value heads, each serving h / g consecutive query heads (sdpa takes them so).
  return {q_, k, kv_[1], 1.0 / std::sqrt(static_cast<double>(dh))};
}

torch::Tensor GqaImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t GqaImpl::parameter_count() const {
  const int64_t d = dims.dim, hq = dims.heads * dims.head_dim, hkv = kv_heads * dims.head_dim;
  return 2 * d * hq + 2 * d * hkv + (dims.qkv_bias ? hq + 2 * hkv : 0) + d;
}

int64_t GqaImpl::kv_floats_per_token() const { return 2 * kv_heads * dims.head_dim; }

double GqaImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, hq = dims.heads * dims.head_dim, hkv = kv_heads * dims.head_dim;
  return 2.0 * d * (hq + 2 * hkv) + 2.0 * 2 * n * hq + 2.0 * hq * d;
}

json GqaImpl::describe() const {
  return json{{"name", name}, {"heads", dims.heads}, {"kv_heads", kv_heads}, {"head_dim", dims.head_dim},
              {"kernel", sdpa_path()}};
}

AttentionPtr make_gqa(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  const int64_t g = o.integer("kv_heads");
  o.finish();
  if (g < 1 || g > dims.heads || dims.heads % g != 0)
    fail("model.attention.kv_heads: ", g, " must divide model.heads=", dims.heads);
  require_rope_width(dims, dims.head_dim, "model.head_dim (d_h)");
  return std::make_shared<GqaImpl>(dims, g, "gqa");
}

AttentionPtr make_mqa(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options(cfg).finish();
  require_rope_width(dims, dims.head_dim, "model.head_dim (d_h)");
  return std::make_shared<GqaImpl>(dims, 1, "mqa");
}

}  // namespace vitlab
