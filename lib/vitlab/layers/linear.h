#pragma once
// Linear with PyTorch's own linear as its forward. The C++ frontend's forward, for
// inputs of more than two dimensions, runs matmul and then adds the bias as a separate kernel;
// under bf16 autocast that add also promotes to float32 over the whole activation (the
// profile in experiments/bench_gpu/README.md: 40% of vit_small's inference time). at::linear
// is what Python's nn.Linear calls: autocast casts the bias with the weight and cuBLASLt adds
// it in the matrix product's epilogue. Same parameters (weight, bias), same names.
//
// When training in bf16 on CUDA (where kernels/bias_grad.cu was built) the backward is written
// out: the same two matrix products autograd runs for dX and dW, dW written in float32 straight
// from the product's float32 sums (autocast rounds it to bf16 and casts it back, a kernel per
// weight), and the bias gradient from a column-sum kernel that reads dY near full bandwidth and
// sums in float32; in forward_gelu that sum is taken inside the GELU backward (the exact GELU
// or its tanh approximation). The forward and dX are unchanged.
#include <torch/torch.h>

#include <vector>

namespace vitlab {

// Whether this build has the bias-gradient kernels (a CUDA LibTorch and nvcc at configure time).
bool fused_bias_grad_built();

// A Linear's weight and bias already cast to bf16 (see LentBf16Weights), or undefined tensors.
struct Bf16Copy {
  torch::Tensor weight, bias;
};

// The GELU a Linear's output may go through inside linear(): none, the exact (erf) form, or its
// tanh approximation (model.mlp gelu_tanh).
enum class Gelu { kNone, kExact, kTanh };

// x W^T + b, then `gelu`. `fused` false forces LibTorch's autograd (tests compare the two).
// `copy`: bf16 casts of weight and bias, read instead of casting them here where the product
// runs in bf16 (the gradient still reaches weight and bias).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, Gelu gelu,
                     bool fused = true, const Bf16Copy& copy = {});

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x) { return vitlab::linear(x, weight, bias, Gelu::kNone, true, lent); }
  torch::Tensor forward_gelu(const torch::Tensor& x, Gelu form = Gelu::kExact) {
    return vitlab::linear(x, weight, bias, form, true, lent);
  }
  Bf16Copy lent;  // set only while a LentBf16Weights is alive
};
TORCH_MODULE(Linear);

// For one forward of `model` in bf16 on CUDA (autocast on, float32 weights): the weight and bias
// of every vitlab::Linear in it cast to bf16 by one multi-tensor kernel and lent to the modules
// until this goes out of scope. Otherwise each product casts its own: two launches per Linear,
// about a hundred a step for vit_small, each too small to fill the GPU. Does nothing elsewhere
// (CPU, float32, LibTorch without the fused kernels).
class LentBf16Weights {
 public:
  LentBf16Weights(torch::nn::Module& model, const torch::Tensor& input);
  ~LentBf16Weights();
  LentBf16Weights(const LentBf16Weights&) = delete;
  LentBf16Weights& operator=(const LentBf16Weights&) = delete;

 private:
  std::vector<LinearImpl*> borrowers_;
};

}  // namespace vitlab
