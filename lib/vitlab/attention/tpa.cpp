#include "vitlab/attention/tpa.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

TpaImpl::TpaImpl(const AttentionDims& d, int64_t rq, int64_t rk, int64_t rv)
    : dims(d), q_rank(rq), k_rank(rk), v_rank(rv) {
  // Initialisation: a factors of unit scale (W_a ~ N(0, 1/d)) act as head mixing weights; the b
  // factors carry the scale, W_b ~ N(0, R s^2) with s = 0.02, so that every entry of Q, K, V has
  // the variance d s^2 of MHA's timm init: var(Q_ij) = (1/R^2) R var(a) var(b) = d s^2.
  const double s = 0.02;
  auto factor = [&](const char* name, int64_t cols, double std) {
    return register_parameter(name, torch::randn({d.dim, cols}) * std);
  };
  const double a_std = 1.0 / std::sqrt(static_cast<double>(d.dim));
  a_q = factor("a_q", rq * d.heads, a_std), b_q = factor("b_q", rq * d.head_dim, s * std::sqrt(double(rq)));
  a_k = factor("a_k", rk * d.heads, a_std), b_k = factor("b_k", rk * d.head_dim, s * std::sqrt(double(rk)));
  a_v = factor("a_v", rv * d.heads, a_std), b_v = factor("b_v", rv * d.head_dim, s * std::sqrt(double(rv)));
  proj = register_module("proj", Linear(d.heads * d.head_dim, d.dim));
}

Projected TpaImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, dh = dims.head_dim;
  // (1/R) sum_r a_r (outer) b_r for one role, with the b factors rotated when asked.
  auto build = [&](const torch::Tensor& wa, const torch::Tensor& wb, int64_t R, bool rotate) {
    auto a = x.matmul(wa).view({B, N, R, h});                    // (B, N, R, h)
    auto b = x.matmul(wb).view({B, N, R, dh});                   // (B, N, R, d_h)
    if (rotate) b = rope->rotate(b.transpose(1, 2)).transpose(1, 2);  // rotated as (B, R, N, d_h)
    return torch::einsum("bnrh,bnrd->bhnd", {a, b}) / static_cast<double>(R);  // (B, h, N, d_h)
  };
  return {build(a_q, b_q, q_rank, rope != nullptr), build(a_k, b_k, k_rank, rope != nullptr),
          build(a_v, b_v, v_rank, false), 1.0 / std::sqrt(static_cast<double>(dh))};
}

torch::Tensor TpaImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t TpaImpl::parameter_count() const {
  const int64_t d = dims.dim, h = dims.heads, dh = dims.head_dim;
  return d * (q_rank + k_rank + v_rank) * (h + dh) + h * dh * d + d;
}

int64_t TpaImpl::kv_floats_per_token() const { return (k_rank + v_rank) * (dims.heads + dims.head_dim); }

double TpaImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, h = dims.heads, dh = dims.head_dim, R = q_rank + k_rank + v_rank;
  return 2.0 * d * R * (h + dh)   // the factors
         + 2.0 * R * h * dh       // their outer products
         + 2.0 * 2 * n * h * dh   // scores and the weighted sum of values
         + 2.0 * h * dh * d;      // output projection
}

json TpaImpl::describe() const {
  return json{{"name", "tpa"},       {"heads", dims.heads},     {"head_dim", dims.head_dim}, {"q_rank", q_rank},
              {"k_rank", k_rank},    {"v_rank", v_rank},        {"kernel", sdpa_path()}};
}

AttentionPtr make_tpa(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  // T6's defaults: R_q = 6, R_k = R_v = 2.
  const int64_t rq = o.integer("q_rank", 6), rk = o.integer("k_rank", 2), rv = o.integer("v_rank", 2);
  o.finish();
  for (auto [key, r] : {std::pair<const char*, int64_t>{"q_rank", rq}, {"k_rank", rk}, {"v_rank", rv}})
    if (r < 1) fail("model.attention.", key, ": ", r, " must be at least 1");
  require_rope_width(dims, dims.head_dim, "model.head_dim (d_h)");
  return std::make_shared<TpaImpl>(dims, rq, rk, rv);
}

}  // namespace vitlab
