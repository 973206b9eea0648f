#include "vitlab/layers/add_norm.h"

#include "vitlab/compat.h"

#ifdef VITLAB_WITH_KERNELS
#include "vitlab/kernels/add_layer_norm.h"
#include "vitlab/layers/kernel_launch.h"
#endif

namespace vitlab {
namespace {

// LibTorch's two operations: the reference the kernels match, and the path where they cannot run.
std::pair<torch::Tensor, torch::Tensor> add_then_norm(const torch::Tensor& x, const torch::Tensor& y,
                                                      torch::nn::LayerNorm& norm) {
  auto s = x + y;
  return {s, norm(s)};
}

}  // namespace

#ifdef VITLAB_WITH_KERNELS
namespace {

kernels::DType dtype_of(const torch::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16,
              "add_norm: float32 or bf16 expected, got ", t.scalar_type());
  return t.scalar_type() == torch::kFloat ? kernels::DType::kFloat : kernels::DType::kBFloat16;
}

using kernel_launch::sm_count;
using kernel_launch::stream;

// Outputs (s, out); inputs x (float32, (..., D)), y (float32 or bf16, x's shape or (1, ...) of it,
// broadcast over the first dimension), the norm's weight and bias.
class AddLayerNorm : public torch::autograd::Function<AddLayerNorm> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                                const torch::Tensor& y, const torch::Tensor& w,
                                                const torch::Tensor& b, double eps, bool out_bf16) {
    const auto xc = x.contiguous(), yc = y.contiguous();
    const int64_t D = xc.size(-1), M = xc.numel() / D, y_rows = yc.numel() / D;
    auto s = torch::empty_like(xc);
    auto out = torch::empty(xc.sizes(), xc.options().dtype(out_bf16 ? torch::kBFloat16 : torch::kFloat));
    auto mean = torch::empty({M}, xc.options()), rstd = torch::empty({M}, xc.options());
    kernels::add_layer_norm_forward(xc.data_ptr<float>(), yc.data_ptr(), dtype_of(yc), y_rows, w.data_ptr<float>(),
                                    b.data_ptr<float>(), s.data_ptr<float>(), out.data_ptr(), dtype_of(out),
                                    mean.data_ptr<float>(), rstd.data_ptr<float>(), M, D, static_cast<float>(eps),
                                    sm_count(), stream());
    ctx->save_for_backward({s, w, mean, rstd});
    ctx->saved_data["y_bf16"] = yc.scalar_type() == torch::kBFloat16;
    ctx->saved_data["y_broadcast"] = y_rows != M;
    return {s, out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &s = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const bool y_bf16 = ctx->saved_data["y_bf16"].toBool(), y_broadcast = ctx->saved_data["y_broadcast"].toBool();
    // y's gradient from s's: the same tensor, in y's dtype, summed over the first dimension
    // where y was broadcast over it (none for a fixed table, such as the sin-cos positions).
    auto grad_y_of = [&](const torch::Tensor& grad_s) {
      if (!ctx->needs_input_grad(1)) return torch::Tensor();
      auto g = y_broadcast ? grad_s.sum(0, /*keepdim=*/true) : grad_s;
      return y_bf16 ? g.to(torch::kBFloat16) : g;
    };
    torch::Tensor grad_s_in = grads[0].defined() ? grads[0].contiguous() : torch::Tensor();
    if (!grads[1].defined()) {  // the norm's output was not used: s's own gradient passes through
      TORCH_CHECK(grad_s_in.defined(), "add_norm: no gradient for either output");
      return {grad_s_in, grad_y_of(grad_s_in), {}, {}, {}, {}};
    }
    const auto grad_out = grads[1].contiguous();
    const int64_t D = s.size(-1), M = s.numel() / D;
    auto grad_s = torch::empty_like(s);
    // The kernel writes y's bf16 gradient beside grad_s when y has s's shape.
    const bool kernel_grad_y = y_bf16 && !y_broadcast;
    torch::Tensor grad_y = kernel_grad_y ? torch::empty(s.sizes(), s.options().dtype(torch::kBFloat16)) : torch::Tensor();
    auto partial = torch::empty({2, kernels::add_layer_norm_backward_blocks(M, sm_count()), D}, s.options());
    auto grad_wb = torch::empty({2, D}, s.options());  // the weight's and the bias's gradients
    kernels::add_layer_norm_backward(grad_out.data_ptr(), dtype_of(grad_out),
                                     grad_s_in.defined() ? grad_s_in.data_ptr<float>() : nullptr, s.data_ptr<float>(),
                                     w.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
                                     grad_s.data_ptr<float>(), kernel_grad_y ? grad_y.data_ptr() : nullptr,
                                     kernel_grad_y ? kernels::DType::kBFloat16 : kernels::DType::kFloat,
                                     partial[0].data_ptr<float>(), partial[1].data_ptr<float>(),
                                     grad_wb[0].data_ptr<float>(), grad_wb[1].data_ptr<float>(), M, D, sm_count(),
                                     stream());
    return {grad_s, kernel_grad_y ? grad_y : grad_y_of(grad_s), grad_wb[0], grad_wb[1], {}, {}};
  }
};

bool fusable(const torch::Tensor& x, const torch::Tensor& y, const torch::nn::LayerNormImpl& n) {
  const auto& shape = n.options.normalized_shape();
  const bool y_shape = y.sizes() == x.sizes() || (x.dim() > 1 && y.dim() == x.dim() && y.size(0) == 1 &&
                                                   y.sizes().slice(1) == x.sizes().slice(1));
  return x.is_cuda() && x.scalar_type() == torch::kFloat && y_shape && y.device() == x.device() &&
         (y.scalar_type() == torch::kFloat || y.scalar_type() == torch::kBFloat16) && n.weight.defined() &&
         n.bias.defined() && shape.size() == 1 && shape[0] == x.size(-1) &&
         kernels::add_layer_norm_supports(x.size(-1));
}

}  // namespace

bool fused_add_norm_built() { return true; }

std::pair<torch::Tensor, torch::Tensor> add_norm(const torch::Tensor& x, const torch::Tensor& y,
                                                 torch::nn::LayerNorm norm, bool feeds_linear, bool fused) {
  if (fused && fusable(x, y, *norm)) {
    const bool out_bf16 = feeds_linear && compat::autocast_bf16_enabled(c10::DeviceType::CUDA);
    auto r = AddLayerNorm::apply(x, y, norm->weight, norm->bias, norm->options.eps(), out_bf16);
    return {r[0], r[1]};
  }
  return add_then_norm(x, y, norm);
}

#else

bool fused_add_norm_built() { return false; }

std::pair<torch::Tensor, torch::Tensor> add_norm(const torch::Tensor& x, const torch::Tensor& y,
                                                 torch::nn::LayerNorm norm, bool, bool) {
  return add_then_norm(x, y, norm);
}

#endif

}  // namespace vitlab
