#include "vitlab/attention/mla.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

MlaImpl::MlaImpl(const AttentionDims& d, int64_t rq, int64_t rkv, int64_t rr)
    : dims(d), q_rank(rq), kv_rank(rkv), rope_dim(rr) {
  const int64_t inner = d.heads * d.head_dim, q_in = rq > 0 ? rq : d.dim;
  auto linear = [](int64_t in, int64_t out) { return Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  if (rq > 0) q_down = register_module("q_down", linear(d.dim, rq));
  q_up = register_module("q_up", linear(q_in, inner));
  kv_down = register_module("kv_down", linear(d.dim, rkv));
  kv_up = register_module("kv_up", linear(rkv, 2 * inner));
  if (rr > 0) {
    q_rope = register_module("q_rope", linear(q_in, d.heads * rr));
    k_rope = register_module("k_rope", linear(d.dim, rr));
  }
  proj = register_module("proj", Linear(inner, d.dim));
}

Projected MlaImpl::project(const torch::Tensor& x, const Rope2d* rope) {
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, dh = dims.head_dim;
  auto c_q = q_rank > 0 ? q_down(x) : x;                                        // (B, N, r_q)
  auto q = q_up(c_q).view({B, N, h, dh}).transpose(1, 2);                       // (B, h, N, d_h)
  auto kv = split_heads(kv_up(kv_down(x)), 2, h);                                // 2 x (B, h, N, d_h)
  torch::Tensor k = kv[0];
  if (rope_dim > 0) {
    auto qr = q_rope(c_q).view({B, N, h, rope_dim}).transpose(1, 2);  // (B, h, N, rope_dim)
    auto kr = k_rope(x).unsqueeze(1);                                  // (B, 1, N, rope_dim), shared
    if (rope) qr = rope->rotate(qr), kr = rope->rotate(kr);
    q = torch::cat({q, qr}, -1);                                       // (B, h, N, d_h + rope_dim)
    k = torch::cat({k, kr.expand({B, h, N, rope_dim})}, -1);           // (B, h, N, d_h + rope_dim)
  }
  return {q, k, kv[1], 1.0 / std::sqrt(static_cast<double>(dh + rope_dim))};
}

torch::Tensor MlaImpl::combine(const torch::Tensor& o) {
  return proj(merge_heads(o));  // (B, h, N, d_h) -> (B, N, h d_h) -> (B, N, d)
}

int64_t MlaImpl::parameter_count() const {
  const int64_t d = dims.dim, h = dims.heads, inner = h * dims.head_dim, q_in = q_rank > 0 ? q_rank : d;
  return (q_rank > 0 ? d * q_rank : 0) + q_in * inner + d * kv_rank + kv_rank * 2 * inner +
         q_in * h * rope_dim + d * rope_dim + inner * d + d;
}

int64_t MlaImpl::kv_floats_per_token() const { return kv_rank + rope_dim; }

double MlaImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, h = dims.heads, inner = h * dims.head_dim, q_in = q_rank > 0 ? q_rank : d;
  const double proj_in = (q_rank > 0 ? d * q_rank : 0) + q_in * inner + d * kv_rank + kv_rank * 2 * inner +
                         q_in * h * rope_dim + d * rope_dim;
  return 2.0 * proj_in + 2.0 * n * h * (dims.head_dim + rope_dim) + 2.0 * n * inner + 2.0 * inner * d;
}

json MlaImpl::describe() const {
  return json{{"name", "mla"},     {"heads", dims.heads},       {"head_dim", dims.head_dim},
              {"q_rank", q_rank},  {"kv_rank", kv_rank},        {"rope_dim", rope_dim},
              {"kernel", sdpa_path()}};
}

AttentionPtr make_mla(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  const int64_t kv = o.integer("kv_rank"), q = o.integer("q_rank", 0), rr = o.integer("rope_dim", 0);
  o.finish();
  if (kv < 1 || kv > dims.dim) fail("model.attention.kv_rank: ", kv, " must be in [1, model.dim=", dims.dim, "]");
  if (q < 0 || q > dims.dim) fail("model.attention.q_rank: ", q, " must be in [0, model.dim=", dims.dim, "] (0: no query compression)");
  if (rr < 0) fail("model.attention.rope_dim: ", rr, " must not be negative");
  if (dims.rope && rr == 0)
    fail("model.attention.rope_dim: mla needs rope_dim > 0 with model.pos=rope (latent keys are not rotated; "
         "RoPE goes through a decoupled key of that width)");
  if (!dims.rope && rr > 0) fail("model.attention.rope_dim: ", rr, " needs model.pos=rope");
  require_rope_width(dims, rr, "model.attention.rope_dim");
  return std::make_shared<MlaImpl>(dims, q, kv, rr);
}

}  // namespace vitlab
