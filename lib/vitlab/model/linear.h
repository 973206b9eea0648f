#pragma once
// Linear with PyTorch's own linear as its forward. The C++ frontend's forward, for
// inputs of more than two dimensions, runs matmul and then adds the bias as a separate kernel;
// under bf16 autocast that add also promotes to float32 over the whole activation (the
// profile in experiments/bench_gpu/README.md: 40% of vit_small's inference time). at::linear
// is what Python's nn.Linear calls: autocast casts the bias with the weight and cuBLASLt adds
// it in the matrix product's epilogue. Same parameters (weight, bias), same names.
#include <torch/torch.h>

namespace vitlab {

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x) { return torch::linear(x, weight, bias); }
};
TORCH_MODULE(Linear);

}  // namespace vitlab
