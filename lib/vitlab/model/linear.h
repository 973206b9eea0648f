#pragma once
// Linear with PyTorch's own linear as its forward. The C++ frontend's forward, for
// inputs of more than two dimensions, runs matmul and then adds the bias as a separate kernel;
// under bf16 autocast that add also promotes to float32 over the whole activation (the
// profile in experiments/bench_gpu/README.md: 40% of vit_small's inference time). at::linear
// is what Python's nn.Linear calls: autocast casts the bias with the weight and cuBLASLt adds
// it in the matrix product's epilogue. Same parameters (weight, bias), same names.
//
// When training in bf16 on CUDA (where kernels/bias_grad.cu was built) the backward is written
// out: the same two matrix products autograd runs for dX and dW, and the bias gradient from a
// column-sum kernel that reads dY near full bandwidth and sums in float32 (autocast's path
// rounds it to bf16 first); in forward_gelu that sum is taken inside the GELU backward. The
// forward and the numbers of dX and dW are unchanged.
#include <torch/torch.h>

namespace vitlab {

// Whether this build has the bias-gradient kernels (a CUDA LibTorch and nvcc at configure time).
bool fused_bias_grad_built();

// x W^T + b, then the exact GELU when `gelu`. `fused` false forces LibTorch's autograd (tests
// compare the two).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, bool gelu,
                     bool fused = true);

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x) { return vitlab::linear(x, weight, bias, /*gelu=*/false); }
  torch::Tensor forward_gelu(const torch::Tensor& x) { return vitlab::linear(x, weight, bias, /*gelu=*/true); }
};
TORCH_MODULE(Linear);

}  // namespace vitlab
