#pragma once
// The one scaled-dot-product attention entry point all variants call:
// softmax(q k^T * scale) v over the last two dimensions, q (B, h, N, e), k (B, g, M, e),
// v (B, g, M, f) -> (B, h, N, f). Keys and values may have fewer heads than queries (g divides
// h, grouped-query attention): key/value head j serves query heads j h/g ... (j+1) h/g - 1.
#include <torch/torch.h>

namespace vitlab {

// Fused kernel (flash / memory-efficient on CUDA) on LibTorch 2.x, the composition on 1.13.
// Grouped keys/values go to the flash kernel as they are where it takes them (LibTorch >= 2.5,
// bf16/fp16 on CUDA); elsewhere they are widened to h heads first.
torch::Tensor sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);
// The plain composition, always available (reference and fallback path).
torch::Tensor sdpa_composed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);
// softmax(scores) v with the softmax in at least float32: scores (B, h, N, M), v (B, h, M, f).
torch::Tensor softmax_values(const torch::Tensor& scores, const torch::Tensor& v);
// (B, g, M, e) -> (B, h, M, e), each head repeated h/g times in place (a copy unless g is 1 or h).
torch::Tensor widen_heads(const torch::Tensor& t, int64_t heads);
// "fused" or "composed": what sdpa() runs in this build.
const char* sdpa_path();

}  // namespace vitlab
