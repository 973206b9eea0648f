#pragma once
// The residual add fused with the LayerNorm that follows it, s = x + y, out = LN(s), forward and
// backward, as CUDA kernels on raw pointers (layers/add_norm.h wraps them in autograd). Eager
// LibTorch runs the add, the norm and the cast of its output to bf16 as three kernels that each
// read and write the whole activation (24 bytes per element with an fp32 residual stream and a
// bf16 branch); fused it is 12 (BENCHMARKS.md: these memory-bound kernels are most of a
// vit_small training step that is not a matrix product).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

enum class DType { kFloat, kBFloat16 };

// The row widths the kernels take: D a multiple of 32 with D / 32 in {2, 4, 6, 8, 12, 16, 24, 32}
// (64 ... 1024; ViT-Ti/S/B are 192, 384, 768).
bool add_layer_norm_supports(int64_t D);

// Rows of width D: s = x + y (float32), out = (s - mean) * rstd * w + b in `out_type`; mean and
// rstd (float32, M) are kept for the backward. x, s: float32; y: `y_type`, y_rows rows (M, or a
// divisor of M: row i adds y's row i mod y_rows, as a (1, N, D) position table broadcast over
// the batch); w, b: float32.
void add_layer_norm_forward(const float* x, const void* y, DType y_type, int64_t y_rows, const float* w,
                            const float* b, float* s, void* out, DType out_type, float* mean, float* rstd, int64_t M,
                            int64_t D, float eps, int sm_count, cudaStream_t stream);

// How many partial rows of the weight gradients the backward needs as scratch.
int add_layer_norm_backward_blocks(int64_t M, int sm_count);

// Given the gradient of out (`out_type`) and of s from its other uses (float32, may be null):
// grad_s = d(LN)/ds^T grad_out + grad_s_in (float32; it is also x's gradient), grad_y the same in
// `y_type` (null when y is float32: grad_s serves), and the weight gradients grad_w = sum over
// rows of grad_out * xhat, grad_b = sum of grad_out (float32, D), by way of the scratch
// partial_w, partial_b (add_layer_norm_backward_blocks x D each).
void add_layer_norm_backward(const void* grad_out, DType out_type, const float* grad_s_in, const float* s,
                             const float* w, const float* mean, const float* rstd, float* grad_s, void* grad_y,
                             DType y_type, float* partial_w, float* partial_b, float* grad_w, float* grad_b, int64_t M,
                             int64_t D, int sm_count, cudaStream_t stream);

}  // namespace vitlab::kernels
