#pragma once
// The bias gradient of a Linear, db = sum over rows of dY, as CUDA kernels on raw pointers
// (layers/linear.cpp wraps them in autograd); for the MLP's first Linear fused with the GELU
// backward in front of it. Eager LibTorch sums dY with its generic reduction, which reads the
// bf16 gradients of vit_small's four Linears per block at about 1.3 TB/s (3.3 ms of a 31 ms
// training step on the H100, BENCHMARKS.md); these read them at nearer the full bandwidth, and
// the fc1 sum is taken while its gradient is written, so that gradient is never read again.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

// The widths the kernels take: N a multiple of 8 up to 6144 (each thread sums 8 adjacent columns,
// a block covers at least one whole row); layers/linear.cpp leaves others to LibTorch.
bool bias_grad_supports(int64_t N);

// How many partial rows (of N float32 sums each) the kernels below need as scratch.
int bias_grad_partial_rows(int64_t M, int64_t N, int sm_count, bool gelu);

// dY (bf16, M x N, row-major): out[j] = sum over i of dY[i][j], in float32. `partial` is scratch
// of bias_grad_partial_rows(M, N, sm_count, false) x N floats. The sum's order is fixed by the
// shapes and the SM count, so a result repeats bit for bit.
void column_sum_bf16(const void* dy, float* partial, float* out, int64_t M, int64_t N, int sm_count,
                     cudaStream_t stream);

// h = gelu(z) (the exact, erf form; with `tanh` its tanh approximation): given dh and z (bf16,
// M x N), dz = dh * gelu'(z) in bf16 (PyTorch's GeluBackward, in float32, rounded once) and
// out = the column sums of that dz. `partial`: bias_grad_partial_rows(M, N, sm_count, true) x N floats.
void gelu_backward_column_sum_bf16(const void* dh, const void* z, void* dz, float* partial, float* out, int64_t M,
                                   int64_t N, bool tanh, int sm_count, cudaStream_t stream);

}  // namespace vitlab::kernels
