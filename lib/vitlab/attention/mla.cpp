#include "vitlab/attention/mla.h"

#include <cmath>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

namespace vitlab {

MlaImpl::MlaImpl(const AttentionDims& d, int64_t rq, int64_t rkv) : dims(d), q_rank(rq), kv_rank(rkv) {
  const int64_t inner = d.heads * d.head_dim;
  auto linear = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  if (rq > 0) q_down = register_module("q_down", linear(d.dim, rq));
  q_up = register_module("q_up", linear(rq > 0 ? rq : d.dim, inner));
  kv_down = register_module("kv_down", linear(d.dim, rkv));
  kv_up = register_module("kv_up", linear(rkv, 2 * inner));
  proj = register_module("proj", torch::nn::Linear(inner, d.dim));
}

torch::Tensor MlaImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), h = dims.heads, dh = dims.head_dim;
  auto q = q_up(q_rank > 0 ? q_down(x) : x).view({B, N, h, dh}).transpose(1, 2);  // (B, h, N, d_h)
  auto kv = kv_up(kv_down(x)).view({B, N, 2, h, dh}).permute({2, 0, 3, 1, 4});    // (2, B, h, N, d_h)
  auto o = sdpa(q, kv[0], kv[1], 1.0 / std::sqrt(static_cast<double>(dh)));       // (B, h, N, d_h)
  return proj(o.transpose(1, 2).reshape({B, N, h * dh}));                         // (B, N, d)
}

int64_t MlaImpl::parameter_count() const {
  const int64_t d = dims.dim, inner = dims.heads * dims.head_dim;
  const int64_t q = q_rank > 0 ? d * q_rank + q_rank * inner : d * inner;
  return q + d * kv_rank + kv_rank * 2 * inner + inner * d + d;
}

int64_t MlaImpl::kv_floats_per_token() const { return kv_rank; }

double MlaImpl::flops_per_token(int64_t n) const {
  const double d = dims.dim, inner = dims.heads * dims.head_dim;
  const double q = q_rank > 0 ? d * q_rank + q_rank * inner : d * inner;
  return 2.0 * (q + d * kv_rank + kv_rank * 2 * inner) + 2.0 * 2 * n * inner + 2.0 * inner * d;
}

json MlaImpl::describe() const {
  return json{{"name", "mla"}, {"heads", dims.heads}, {"head_dim", dims.head_dim}, {"q_rank", q_rank},
              {"kv_rank", kv_rank}, {"kernel", sdpa_path()}};
}

AttentionPtr make_mla(const AttentionConfig& cfg, const AttentionDims& dims) {
  Options o(cfg);
  const int64_t kv = o.integer("kv_rank"), q = o.integer("q_rank", 0);
  o.finish();
  if (kv < 1 || kv > dims.dim) fail("model.attention.kv_rank: ", kv, " must be in [1, model.dim=", dims.dim, "]");
  if (q < 0 || q > dims.dim) fail("model.attention.q_rank: ", q, " must be in [0, model.dim=", dims.dim, "] (0: no query compression)");
  return std::make_shared<MlaImpl>(dims, q, kv);
}

}  // namespace vitlab
