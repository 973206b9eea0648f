#pragma once
// A residual add and the LayerNorm after it, s = x + y and LN(s), the pair every transformer
// block computes twice. On CUDA, where the kernels were built (kernels/add_layer_norm.cu), one
// kernel forward and one backward; elsewhere the two operations as LibTorch runs them.
#include <torch/torch.h>

#include <utility>

namespace vitlab {

// Whether this build has the fused kernels (a CUDA LibTorch and nvcc at configure time).
bool fused_add_norm_built();

// (x + y, norm(x + y)); y has x's shape, or is (1, ...) and broadcast over x's first dimension
// (the position table added to every image's tokens). `feeds_linear`: the norm's output goes straight into a Linear, which
// under bf16 autocast casts it to bf16 first, so the fused kernel may write it in bf16 (the same
// numbers). `fused` false forces the two LibTorch operations (tests compare the two).
std::pair<torch::Tensor, torch::Tensor> add_norm(const torch::Tensor& x, const torch::Tensor& y,
                                                 torch::nn::LayerNorm norm, bool feeds_linear,
                                                 bool fused = true);

}  // namespace vitlab
