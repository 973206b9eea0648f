#pragma once
// Multi-level low-rank attention's one-hot expansion (attention/mlr.h), forward and backward, as
// CUDA kernels on raw bf16 pointers (attention/mlr.cpp wraps them in autograd). Per level l the
// q (or k) columns of that level, r_l of them, are spread over the token's cell:
//   ext[., off_l + r cells_l + c] = q[., q_off_l + r] if c is the token's level-l cell, else 0,
// so that ext_i . ext_j = sum_l [same cell] q_i^(l) . k_j^(l). LibTorch runs this as a broadcast
// product per level and a concatenation, with a reduction over the cells in the backward: about
// 18 ms of copies, products and sums beyond MHA's in MLR's 38 ms vit_small training step on the
// H100 (experiments/attention_zoo). These write ext once and read it once.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

struct MlrLevels {
  static constexpr int kMax = 8;
  int count;
  int q_offset[kMax], rank[kMax], ext_offset[kMax], cells[kMax];
};

// The shapes the kernels take: at most MlrLevels::kMax levels, an expanded width and a head width
// d_h that are multiples of 8 (each thread writes 8 columns at once), and rows = B N h
// token-head rows few enough that rows * width and rows * d_h index in 32 bits.
bool mlr_onehot_supports(int levels, int64_t width, int64_t rows, int64_t dh);

// q (B, h, N, d_h) bf16 with contiguous rows, element (b, i, n, j) at
// q[b * batch_stride + i * head_stride + n * token_stride + j]; cell (levels, N) int32, the
// token's cell per level (-1: none); ext (B, N, h, width), contiguous bf16.
void mlr_onehot_forward(const void* q, int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                        const int32_t* cell, const MlrLevels& levels, void* ext, int64_t B, int64_t h, int64_t N,
                        int64_t width, cudaStream_t stream);

// dext (B, N, h, width) contiguous bf16 -> dq (B, N, h, d_h) contiguous bf16: each q column's
// gradient is the one ext column it was copied to (zero where the token has no cell).
void mlr_onehot_backward(const void* dext, const int32_t* cell, const MlrLevels& levels, void* dq, int64_t B,
                         int64_t h, int64_t N, int64_t dh, int64_t width, cudaStream_t stream);

}  // namespace vitlab::kernels
