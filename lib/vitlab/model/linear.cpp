#include "vitlab/model/linear.h"

#include "vitlab/compat.h"

#ifdef VITLAB_WITH_KERNELS
#include <cstdint>

#include "vitlab/kernels/bias_grad.h"
#include "vitlab/model/kernel_launch.h"
#endif

namespace vitlab {
namespace {

torch::Tensor linear_then_gelu(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool gelu) {
  auto z = torch::linear(x, w, b);
  return gelu ? torch::gelu(z) : z;
}

}  // namespace

#ifdef VITLAB_WITH_KERNELS
namespace {

using kernel_launch::sm_count;
using kernel_launch::stream;
bool aligned16(const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; }

// Inputs x (..., K) and weight (N, K) in bf16, bias (N) in its own dtype (float32 for a float32
// model under autocast); output z = x W^T + b or gelu(z). The bias is cast inside, so its
// gradient leaves in the bias's dtype straight from the kernels' float32 sums.
class LinearBiasGrad : public torch::autograd::Function<LinearBiasGrad> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                                const torch::Tensor& w, const torch::Tensor& b, bool gelu) {
    auto z = torch::linear(x, w, b.to(torch::kBFloat16));  // (..., N)
    ctx->save_for_backward({x, w, gelu ? z : torch::Tensor()});
    ctx->saved_data["gelu"] = gelu;
    ctx->saved_data["bias_dtype"] = b.scalar_type();
    return {gelu ? torch::gelu(z) : z};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &z = saved[2];
    const bool gelu = ctx->saved_data["gelu"].toBool();
    const int64_t N = w.size(0), K = w.size(1);
    auto g = grads[0].reshape({-1, N}).contiguous();  // (M, N): dZ, or dH before the GELU
    if (!aligned16(g)) g = g.clone();
    const int64_t M = g.size(0);
    const auto f32 = g.options().dtype(torch::kFloat);
    auto partial = torch::empty({kernels::bias_grad_partial_rows(M, N, sm_count(), gelu), N}, f32);
    auto gb = torch::empty({N}, f32);
    if (gelu) {
      auto dz = torch::empty_like(g);  // (M, N)
      kernels::gelu_backward_column_sum_bf16(g.data_ptr(), z.data_ptr(), dz.data_ptr(), partial.data_ptr<float>(),
                                             gb.data_ptr<float>(), M, N, sm_count(), stream());
      g = dz;
    } else {
      kernels::column_sum_bf16(g.data_ptr(), partial.data_ptr<float>(), gb.data_ptr<float>(), M, N, sm_count(),
                               stream());
    }
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) gx = g.mm(w).view(x.sizes());          // (M, K) -> (..., K)
    if (ctx->needs_input_grad(1)) gw = g.t().mm(x.reshape({-1, K}));    // (N, K)
    return {gx, gw, gb.to(ctx->saved_data["bias_dtype"].toScalarType()), torch::Tensor()};
  }
};

bool fusable(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!b.defined() || !x.is_cuda() || x.dim() < 2 || !torch::GradMode::is_enabled()) return false;
  if (!(x.requires_grad() || w.requires_grad() || b.requires_grad())) return false;
  const bool bf16 = compat::autocast_bf16_enabled(c10::DeviceType::CUDA) ||
                    (x.scalar_type() == torch::kBFloat16 && w.scalar_type() == torch::kBFloat16 &&
                     b.scalar_type() == torch::kBFloat16);
  return bf16 && kernels::bias_grad_supports(w.size(0));
}

}  // namespace

bool fused_bias_grad_built() { return true; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, bool gelu,
                     bool fused) {
  if (fused && fusable(x, weight, bias)) {
    // The casts autocast would make for x and the weight, made here: the Function's inputs are
    // then what the product reads, and the weight cast's backward returns its gradient in float32.
    auto bf16 = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
    return LinearBiasGrad::apply(bf16(x), bf16(weight), bias, gelu)[0];
  }
  return linear_then_gelu(x, weight, bias, gelu);
}

#else

bool fused_bias_grad_built() { return false; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, bool gelu,
                     bool) {
  return linear_then_gelu(x, weight, bias, gelu);
}

#endif

}  // namespace vitlab
