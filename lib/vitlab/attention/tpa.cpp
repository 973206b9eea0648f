#include "vitlab/attention/tpa.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "vitlab/attention/options.h"
#include "vitlab/attention/sdpa.h"
#include "vitlab/error.h"

#ifdef VITLAB_WITH_KERNELS
#include "vitlab/kernels/tpa_product.h"
#include "vitlab/layers/kernel_launch.h"
#endif

namespace vitlab {
namespace {

#ifdef VITLAB_WITH_KERNELS
kernels::TpaFactor factor(const torch::Tensor& t) { return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)}; }

// The per-token outer-product sum through kernels/tpa_product.cu: a (B, N, R, h) and
// b (B, N, R, d_h) -> q (B, N, h, d_h), and back.
class TpaProduct : public torch::autograd::Function<TpaProduct> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b) {
    const int64_t B = a.size(0), N = a.size(1), R = a.size(2), h = a.size(3), dh = b.size(3);
    auto q = torch::empty({B, N, h, dh}, b.options());
    kernels::tpa_product_forward(factor(a), factor(b), q.data_ptr(), B, N, R, h, dh, kernel_launch::stream());
    ctx->save_for_backward({a, b});
    return q;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &a = saved[0], &b = saved[1];
    const int64_t B = a.size(0), N = a.size(1), R = a.size(2), h = a.size(3), dh = b.size(3);
    auto dq = grads[0].contiguous();  // (B, N, h, d_h)
    if (reinterpret_cast<std::uintptr_t>(dq.data_ptr()) % 16 != 0) dq = dq.clone();  // read 16 bytes at a time
    auto da = torch::empty({B, N, R, h}, a.options()), db = torch::empty({B, N, R, dh}, b.options());
    kernels::tpa_product_backward(factor(a), factor(b), dq.data_ptr(), da.data_ptr(), db.data_ptr(), B, N, R, h, dh,
                                  kernel_launch::stream());
    return {da, db};
  }
};

bool kernel_takes(const torch::Tensor& a, const torch::Tensor& b) {
  auto ok = [](const torch::Tensor& t) { return t.is_cuda() && t.scalar_type() == torch::kBFloat16 && t.stride(3) == 1; };
  return ok(a) && ok(b) && kernels::tpa_product_supports(a.size(3), b.size(3), a.size(2));
}
#endif

// (1/R) sum_r a_r (outer) b_r per token: a (B, N, R, h), b (B, N, R, d_h) -> (B, h, N, d_h).
torch::Tensor outer_product_sum(const torch::Tensor& a, const torch::Tensor& b) {
#ifdef VITLAB_WITH_KERNELS
  if (kernel_takes(a, b)) return TpaProduct::apply(a, b).transpose(1, 2);
#endif
  return torch::einsum("bnrh,bnrd->bhnd", {a, b}) / static_cast<double>(a.size(2));
}

}  // namespace

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
  // All six factors from one matrix product, split into views (six products of widths down to
  // R h = 12 would each leave the GPU mostly idle). Its width (R_q + R_k + R_v)(h + d_h) is padded
  // with zero columns to a multiple of 8: cuBLAS's Hopper kernels need 16-byte rows (vit_small's
  // 700 columns ran in sm80 kernels at half their speed).
  std::vector<torch::Tensor> w{a_q, b_q, a_k, b_k, a_v, b_v};
  std::vector<int64_t> widths{q_rank * h, q_rank * dh, k_rank * h, k_rank * dh, v_rank * h, v_rank * dh};
  const int64_t width = (q_rank + k_rank + v_rank) * (h + dh), pad = (8 - width % 8) % 8;
  if (pad) w.push_back(torch::zeros({dims.dim, pad}, a_q.options())), widths.push_back(pad);
  const auto f = x.matmul(torch::cat(w, 1)).split_with_sizes(widths, -1);
  // (1/R) sum_r a_r (outer) b_r for one role, with the b factors rotated when asked.
  auto build = [&](const torch::Tensor& fa, const torch::Tensor& fb, int64_t R, bool rotate) {
    auto a = fa.view({B, N, R, h});                                     // (B, N, R, h)
    auto b = fb.view({B, N, R, dh});                                    // (B, N, R, d_h)
    if (rotate) b = rope->rotate(b.transpose(1, 2)).transpose(1, 2);  // rotated as (B, R, N, d_h)
    return outer_product_sum(a, b);                                     // (B, h, N, d_h)
  };
  return {build(f[0], f[1], q_rank, rope != nullptr), build(f[2], f[3], k_rank, rope != nullptr),
          build(f[4], f[5], v_rank, false), 1.0 / std::sqrt(static_cast<double>(dh))};
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
