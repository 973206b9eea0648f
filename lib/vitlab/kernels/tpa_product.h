#pragma once
// Tensor product attention's per-token sum of outer products, Q_t = (1/R) sum_r a_r (outer) b_r
// (attention/tpa.h), forward and backward, as CUDA kernels on raw bf16 pointers
// (attention/tpa.cpp wraps them in autograd). LibTorch's einsum runs it as a batched product per
// token with k = R (2 to 6): tiny 16 x 16 tiles at a fraction of the memory bandwidth, 7.2 ms of
// a 31 ms vit_small TPA training step on the H100 (experiments/attention_zoo), plus a pass for
// the 1/R. These read each factor once and write Q once.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

// A factor tensor of B x N tokens, R rows of contiguous bf16 each: element (b, n, r, j) at
// data[b * batch_stride + n * token_stride + r * rank_stride + j] (any alignment: a view into
// the one product that makes all six factors will do).
struct TpaFactor {
  const void* data;
  int64_t batch_stride, token_stride, rank_stride;
};

// The shapes the kernels take: head_dim 8, 16, 32, 64, 128 or 256 (a thread takes 8 columns, and
// a token's threads share a warp).
bool tpa_product_supports(int64_t heads, int64_t head_dim, int64_t rank);

// q (B, N, h, d_h), contiguous bf16: q[b, n, i, j] = (1/R) sum_r a[b, n, r, i] b[b, n, r, j],
// summed in float32 and rounded once.
void tpa_product_forward(TpaFactor a, TpaFactor b, void* q, int64_t B, int64_t N, int64_t R, int64_t h, int64_t dh,
                         cudaStream_t stream);

// Given dq (B, N, h, d_h), contiguous bf16: da (B, N, R, h) and db (B, N, R, d_h), contiguous
// bf16, da[., r, i] = (1/R) sum_j dq[., i, j] b[., r, j], db[., r, j] = (1/R) sum_i dq[., i, j] a[., r, i].
void tpa_product_backward(TpaFactor a, TpaFactor b, const void* dq, void* da, void* db, int64_t B, int64_t N,
                          int64_t R, int64_t h, int64_t dh, cudaStream_t stream);

}  // namespace vitlab::kernels
