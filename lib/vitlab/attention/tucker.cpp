#include "vitlab/attention/tucker.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {
namespace {

// (rows x cols) with orthonormal columns (or rows, when cols > rows): a QR of a Gaussian.
torch::Tensor orthonormal(int64_t rows, int64_t cols) {
  auto a = torch::randn({std::max(rows, cols), std::min(rows, cols)});
  auto q = std::get<0>(torch::linalg_qr(a));  // (max, min), orthonormal columns
  return (rows >= cols ? q : q.t()).contiguous();  // LAPACK returns column-major Q
}

}  // namespace

json TuckerRanks::to_json() const {
  return json{{"head_qk", head_qk}, {"q", q}, {"k", k}, {"head_ov", head_ov}, {"v", v}, {"o", o}};
}

TuckerImpl::TuckerImpl(const AttentionDims& d, const TuckerRanks& r) : dims(d), ranks(r) {
  const int64_t h = d.heads;
  // Initialisation: orthonormal factors keep x U at the input's scale; the cores are scaled so
  // that the initial logits and outputs have the variance of an MHA layer initialised with
  // N(0, s^2) weights, s = 0.02 (timm). For unit-variance x:
  //   MHA logit var = (d s^2)^2,  Tucker: r_q r_k var(M) / d_h with var(M) = var(G) r_hqk / h;
  //   MHA output var = h d_h d s^4, Tucker: (r_o / d) h r_v var(N), var(N) = var(G_ov) r_hov / h.
  const double s2 = 0.02 * 0.02, dd = d.dim, dh = d.head_dim;
  const double var_m = dh * std::pow(dd * s2, 2) / (r.q * r.k);
  const double var_n = d.heads * dh * dd * s2 * s2 * dd / (r.o * h * r.v);
  U_q = register_parameter("U_q", orthonormal(d.dim, r.q));
  U_k = register_parameter("U_k", orthonormal(d.dim, r.k));
  U_v = register_parameter("U_v", orthonormal(d.dim, r.v));
  U_o = register_parameter("U_o", orthonormal(d.dim, r.o));
  S_qk = register_parameter("S_qk", orthonormal(h, r.head_qk));
  S_ov = register_parameter("S_ov", orthonormal(h, r.head_ov));
  // Row norms of an orthonormal S average r_head / h, hence the h / r_head below.
  G_qk = register_parameter("G_qk", torch::randn({r.head_qk, r.q, r.k}) * std::sqrt(var_m * h / r.head_qk));
  G_ov = register_parameter("G_ov", torch::randn({r.head_ov, r.v, r.o}) * std::sqrt(var_n * h / r.head_ov));
  bias = register_parameter("bias", torch::zeros({d.dim}));
}

Projected TuckerImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  // x U_q, x U_k and x U_v as one matrix product, split into views: split's backward concatenates
  // the three gradients into one buffer, where narrowing would zero-fill and add one per part.
  auto xu = x.matmul(torch::cat({U_q, U_k, U_v}, 1)).split_with_sizes({ranks.q, ranks.k, ranks.v}, -1);
  auto M = torch::einsum("hc,cqk->hqk", {S_qk, G_qk});     // (h, r_q, r_k): M_i
  auto q = torch::einsum("bnq,hqk->bhnk", {xu[0], M});     // (B, N, r_q) -> (B, h, N, r_k)
  auto k = xu[1].unsqueeze(1);                             // (B, 1, N, r_k), one shared head
  if (rope) q = rope->rotate(q), k = rope->rotate(k);      // RoPE in the r_k space
  auto v = xu[2].unsqueeze(1);                             // (B, 1, N, r_v), one shared head
  return {q, k, v, 1.0 / std::sqrt(static_cast<double>(dims.head_dim))};  // sdpa serves all h from one
}

torch::Tensor TuckerImpl::combine(const torch::Tensor& o) {
  auto Nm = torch::einsum("hc,cvo->hvo", {S_ov, G_ov});  // (h, r_v, r_o): N_i
  auto z = torch::einsum("bhnv,hvo->bno", {o, Nm});      // (B, h, N, r_v) -> (B, N, r_o)
  // z U_o^T + bias (B, N, d): the bias in the product's epilogue, its gradient from the
  // column-sum kernel when training in bf16 on CUDA (layers/linear.h).
  return vitlab::linear(z, U_o, bias, Gelu::kNone);
}

int64_t TuckerImpl::parameter_count() const {
  const auto& r = ranks;
  return dims.dim * (r.q + r.k + r.v + r.o) + r.head_qk * r.q * r.k + r.head_ov * r.v * r.o +
         dims.heads * (r.head_qk + r.head_ov) + dims.dim;
}

int64_t TuckerImpl::kv_floats_per_token() const { return ranks.k + ranks.v; }

double TuckerImpl::flops_per_token(int64_t n) const {
  const auto& r = ranks;
  const double d = dims.dim, h = dims.heads;
  return 2.0 * d * (r.q + r.k + r.v)    // x U_q, x U_k, x U_v
         + 2.0 * h * r.q * r.k          // q_i = (x U_q) M_i
         + 2.0 * n * h * (r.k + r.v)    // scores and weighted values
         + 2.0 * h * r.v * r.o          // sum_i o_i N_i
         + 2.0 * r.o * d;               // U_o^T
}

json TuckerImpl::describe() const {
  return json{{"name", "tucker"}, {"heads", dims.heads}, {"ranks", ranks.to_json()}, {"kernel", sdpa_path()}};
}

AttentionPtr make_tucker(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  // Full ranks (h, d, d) by default: the layer then contains MHA.
  TuckerRanks r{dims.heads, dims.dim, dims.dim, dims.heads, dims.dim, dims.dim};
  if (const json* given = o.object("ranks")) {
    Options ro(*given, "model.attention.ranks", "tucker");
    r.head_qk = ro.integer("head_qk", r.head_qk), r.q = ro.integer("q", r.q), r.k = ro.integer("k", r.k);
    r.head_ov = ro.integer("head_ov", r.head_ov), r.v = ro.integer("v", r.v), r.o = ro.integer("o", r.o);
    ro.finish();
  }
  o.finish();
  auto check = [&](const char* key, int64_t value, int64_t size, const char* mode) {
    if (value < 1 || value > size)
      fail("model.attention.ranks.", key, ": ", value, " must be in [1, ", size, "] (the ", mode, " mode has size ",
           size, ")");
  };
  check("head_qk", r.head_qk, dims.heads, "head");
  check("head_ov", r.head_ov, dims.heads, "head");
  for (auto [key, value] : {std::pair<const char*, int64_t>{"q", r.q}, {"k", r.k}, {"v", r.v}, {"o", r.o}})
    check(key, value, dims.dim, "input/output");
  require_rope_width(dims, r.k, "model.attention.ranks.k");
  return std::make_shared<TuckerImpl>(dims, r);
}

}  // namespace vitlab
