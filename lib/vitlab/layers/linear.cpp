#include "vitlab/layers/linear.h"

#include "vitlab/compat.h"

#ifdef VITLAB_WITH_KERNELS
#include <cstdint>

#include "vitlab/kernels/bias_grad.h"
#include "vitlab/layers/kernel_launch.h"
#endif

namespace vitlab {
namespace {

torch::Tensor apply_gelu(const torch::Tensor& z, Gelu gelu) {
  return gelu == Gelu::kNone ? z : torch::gelu(z, gelu == Gelu::kTanh ? "tanh" : "none");
}

torch::Tensor linear_then_gelu(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, Gelu gelu) {
  return apply_gelu(torch::linear(x, w, b), gelu);
}

}  // namespace

#ifdef VITLAB_WITH_KERNELS
namespace {

using kernel_launch::sm_count;
using kernel_launch::stream;
bool aligned16(const torch::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; }

// Input x (..., K) in bf16, weight (N, K) and bias (N) in their own dtype (float32 for a float32
// model under autocast) and their bf16 casts, made outside autograd; output z = x W^T + b or
// gelu(z) (`gelu`: a Gelu as an integer). The product reads the casts, and the weight's and the
// bias's gradients leave in their own dtype straight from float32 sums.
class LinearBiasGrad : public torch::autograd::Function<LinearBiasGrad> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                                const torch::Tensor& w, const torch::Tensor& b,
                                                const torch::Tensor& w_bf16, const torch::Tensor& b_bf16, int64_t gelu) {
    auto z = torch::linear(x, w_bf16, b_bf16);  // (..., N)
    const Gelu form = static_cast<Gelu>(gelu);
    ctx->save_for_backward({x, w_bf16, form != Gelu::kNone ? z : torch::Tensor()});
    ctx->saved_data["gelu"] = gelu;
    ctx->saved_data["weight_dtype"] = w.scalar_type();
    ctx->saved_data["bias_dtype"] = b.scalar_type();
    return {apply_gelu(z, form)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &z = saved[2];  // w: the bf16 weight
    const Gelu form = static_cast<Gelu>(ctx->saved_data["gelu"].toInt());
    const bool gelu = form != Gelu::kNone;
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
                                             gb.data_ptr<float>(), M, N, form == Gelu::kTanh, sm_count(), stream());
      g = dz;
    } else {
      kernels::column_sum_bf16(g.data_ptr(), partial.data_ptr<float>(), gb.data_ptr<float>(), M, N, sm_count(),
                               stream());
    }
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) gx = g.mm(w).view(x.sizes());  // (M, K) -> (..., K)
    if (ctx->needs_input_grad(1)) {
      const auto x2 = x.reshape({-1, K});  // (M, K)
      gw = ctx->saved_data["weight_dtype"].toScalarType() == torch::kFloat ? compat::mm_float(g.t(), x2)
                                                                            : g.t().mm(x2);  // (N, K)
    }
    return {gx, gw, gb.to(ctx->saved_data["bias_dtype"].toScalarType()), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
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

// Whether the product may read the lent casts in place of the parameters: not where autograd
// would then miss the parameters' gradients.
bool may_read_copy(const torch::Tensor& weight, const torch::Tensor& bias, const Bf16Copy& copy) {
  if (!copy.weight.defined() || bias.defined() != copy.bias.defined()) return false;
  return !torch::GradMode::is_enabled() || !(weight.requires_grad() || (bias.defined() && bias.requires_grad()));
}

}  // namespace

bool fused_bias_grad_built() { return true; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Gelu gelu,
                     bool fused, const Bf16Copy& copy) {
  if (fused && fusable(x, weight, bias)) {
    auto bf16 = [](const torch::Tensor& t, const torch::Tensor& lent) {
      if (lent.defined()) return lent;
      torch::NoGradGuard no_grad;  // the gradient reaches t through the Function, not through the cast
      return t.to(torch::kBFloat16);
    };
    return LinearBiasGrad::apply(x.to(torch::kBFloat16), weight, bias, bf16(weight, copy.weight),
                                 bf16(bias, copy.bias), static_cast<int64_t>(gelu))[0];
  }
  if (may_read_copy(weight, bias, copy)) return linear_then_gelu(x, copy.weight, copy.bias, gelu);
  return linear_then_gelu(x, weight, bias, gelu);
}

LentBf16Weights::LentBf16Weights(torch::nn::Module& model, const torch::Tensor& input) {
  if (!input.is_cuda() || !compat::autocast_bf16_enabled(c10::DeviceType::CUDA)) return;
  std::vector<torch::Tensor> sources, copies;
  auto is_float = [](const torch::Tensor& t) { return t.is_cuda() && t.scalar_type() == torch::kFloat; };
  for (const auto& m : model.modules(/*include_self=*/true)) {
    auto* lin = m->as<LinearImpl>();
    if (!lin || !is_float(lin->weight) || (lin->bias.defined() && !is_float(lin->bias))) continue;
    borrowers_.push_back(lin);
    sources.push_back(lin->weight);
    if (lin->bias.defined()) sources.push_back(lin->bias);
  }
  if (sources.empty()) return;
  for (const auto& s : sources) copies.push_back(torch::empty_like(s, s.options().dtype(torch::kBFloat16)));
  {
    torch::NoGradGuard no_grad;
    compat::foreach_copy_(copies, sources);  // float32 -> bf16
  }
  size_t i = 0;
  for (auto* lin : borrowers_) {
    lin->lent.weight = copies[i++];
    if (lin->bias.defined()) lin->lent.bias = copies[i++];
  }
}

#else

bool fused_bias_grad_built() { return false; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Gelu gelu,
                     bool, const Bf16Copy&) {
  return linear_then_gelu(x, weight, bias, gelu);
}

LentBf16Weights::LentBf16Weights(torch::nn::Module&, const torch::Tensor&) {}

#endif

LentBf16Weights::~LentBf16Weights() {
  for (auto* lin : borrowers_) lin->lent = {};
}

}  // namespace vitlab
