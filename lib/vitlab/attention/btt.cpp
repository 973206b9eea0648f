#include "vitlab/attention/btt.h"

#include <cmath>
#include <utility>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

BttImpl::BttImpl(const AttentionDims& d, int64_t m1_, int64_t r, std::string proj_path)
    : dims(d), m1(m1_), m2(d.dim / m1_), rank(r), projection(std::move(proj_path)) {
  // Initialisation: with scale 1/sqrt(d r) the logit variance is var(q) var(k) for unit-variance
  // x. MHA's timm init gives (d s^2)^2, s = 0.02, so var(q) = var(k) = d s^2: q sums m1 terms,
  // hence var(L) = d s^2 / m1 = m2 s^2; k sums m2 terms, var(R) = m1 s^2.
  const double s = 0.02;
  L = register_parameter("L", torch::randn({d.heads, m2, m1, m1, r}) * (s * std::sqrt(double(m2))));
  R = register_parameter("R", torch::randn({d.heads, m1, m2, r, m2}) * (s * std::sqrt(double(m1))));
  v = register_module("v", Linear(torch::nn::LinearOptions(d.dim, d.heads * d.head_dim).bias(d.qkv_bias)));
  proj = register_module("proj", Linear(d.heads * d.head_dim, d.dim));
}

bool BttImpl::uses_dense(const torch::Device& device) const {
  return projection == "dense" || (projection == "auto" && device.is_cuda());
}

torch::Tensor BttImpl::dense_qk_weight() const {
  // The maps x -> q and x -> k as (out, in) matrices, zero off their blocks:
  // W_q[(i,b',c,s), (a,b)] = L[i,b,a,c,s] [b = b'],  W_k[(i,b,c,s), (c',e)] = R[i,c,b,s,e] [c = c'].
  const int64_t rows = dims.heads * dims.dim * rank;
  auto wq = torch::einsum("ibacs,bB->iBcsab", {L, torch::eye(m2, L.options())}).reshape({rows, dims.dim});
  auto wk = torch::einsum("icbse,cC->ibcsCe", {R, torch::eye(m1, R.options())}).reshape({rows, dims.dim});
  return torch::cat({wq, wk});  // (2 h d r, d)
}

Projected BttImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, dh = dims.head_dim, w = dims.dim * rank;
  torch::Tensor q, k;
  if (uses_dense(x.device())) {
    // One dense product, m2 (for q) and m1 (for k) times the factored multiply-adds, but it
    // writes q and k once in the layout the attention kernel reads; the factored einsums permute
    // q, k and their gradients through strided copies (22.5 of 74 ms in a vit_small step on the
    // H100). Packed rather than two products: within 2% in training, 4% faster inference.
    auto qk = split_heads(torch::linear(x, dense_qk_weight()), 2, h);  // 2 x (B, h, N, d r)
    q = qk[0], k = qk[1];
  } else {
    auto X = x.reshape({B * N, m1, m2});                                                  // (T, m1, m2): x[a, b]
    q = torch::einsum("tab,ibacs->tibcs", {X, L}).reshape({B, N, h, w}).transpose(1, 2);  // (B, h, N, d r)
    k = torch::einsum("tce,icbse->tibcs", {X, R}).reshape({B, N, h, w}).transpose(1, 2);  // (B, h, N, d r)
  }
  if (rope) q = rope->rotate(q), k = rope->rotate(k);
  auto v_ = v(x).view({B, N, h, dh}).transpose(1, 2);                                       // (B, h, N, d_h)
  return {q, k, v_, 1.0 / std::sqrt(static_cast<double>(w))};
}

torch::Tensor BttImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t BttImpl::parameter_count() const {
  const int64_t d = dims.dim, inner = dims.heads * dims.head_dim;
  return dims.heads * d * rank * (m1 + m2) + d * inner + (dims.qkv_bias ? inner : 0) + inner * d + d;
}

int64_t BttImpl::kv_floats_per_token() const { return dims.heads * (dims.dim * rank + dims.head_dim); }

double BttImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, h = dims.heads, inner = h * dims.head_dim, w = d * rank;
  return 2.0 * h * w * (m1 + m2)   // q and k
         + 2.0 * d * inner         // v
         + 2.0 * n * h * w         // scores
         + 2.0 * n * inner         // weighted sum of values
         + 2.0 * inner * d;        // output projection
}

json BttImpl::describe() const {
  return json{{"name", "btt"}, {"heads", dims.heads}, {"m1", m1},           {"m2", m2},
              {"rank", rank},  {"score_width", dims.dim * rank},            {"projection", projection},
              {"kernel", sdpa_path()}};
}

AttentionPtr make_btt(const AttentionConfig& cfg, const AttentionDims& dims) {
  // Default m1: the divisor of d nearest sqrt(d) from below, the most balanced factorisation.
  int64_t balanced = 1;
  for (int64_t m = 1; m * m <= dims.dim; ++m)
    if (dims.dim % m == 0) balanced = m;
  Options o(cfg);
  const int64_t m1 = o.integer("m1", balanced), r = o.integer("rank", 1);
  const std::string projection = o.text("projection", "auto", {"auto", "dense", "factored"});
  o.finish();
  if (m1 < 1 || dims.dim % m1 != 0)
    fail("model.attention.m1: ", m1, " does not divide model.dim=", dims.dim, " (BTT views x as an m1 x m2 matrix)");
  if (r < 1) fail("model.attention.rank: ", r, " must be at least 1");
  require_rope_width(dims, dims.dim * r, "the BTT score width model.dim * model.attention.rank");
  return std::make_shared<BttImpl>(dims, m1, r, projection);
}

}  // namespace vitlab
