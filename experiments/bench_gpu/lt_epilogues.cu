// cuBLASLt's fused epilogues at vit_small's MLP shapes, beside the path vitlab's fc1 takes today
// (issue 27, step 1, measured before any of it goes into the library):
//   1. which GELU the GELU epilogues compute, the exact (erf) form that timm and vitlab use or the
//      tanh approximation, read off float32 outputs, where the two forms differ by up to 4.7e-4
//      (in bf16 outputs the difference hides under one rounding step);
//   2. the time of fc1's forward, Z = X W1^T + b1 and H = gelu(Z): now a matrix product with
//      the bias epilogue (what torch::linear runs) and a GELU kernel; fused, one product with
//      EPILOGUE_GELU_AUX_BIAS writing H and Z (Z is kept for the backward pass);
//   3. the time of its backward up to the bias gradient, dH = dY W2 then dZ = dH * gelu'(Z) and
//      db1 = the column sums of dZ: now a product and vitlab's fused GELU-backward + column-sum
//      kernel (kernels/bias_grad.cu); fused, one product with EPILOGUE_DGELU_BGRAD;
//   and how far the fused results are from the present ones in bf16.
// Build and run on the GPU machine (bash scripts/gpu_check.sh lt_epilogues does both):
//   nvcc -O3 -std=c++17 -arch=sm_90 -I lib experiments/bench_gpu/lt_epilogues.cu
//        lib/vitlab/kernels/bias_grad.cu -lcublasLt -o /tmp/lt_epilogues && /tmp/lt_epilogues [ROWS]
// It prints one JSON object. ROWS defaults to 256 x 197, a batch of vit_small p16 at 224.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vitlab/kernels/bias_grad.h"

namespace {

using bf16 = __nv_bfloat16;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "lt_epilogues: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "lt_epilogues: %s: cublasStatus %d\n", what, static_cast<int>(s));
    std::exit(1);
  }
}

// Uniform values in [-scale, scale) from a hash of the index: the same data on every run.
template <typename T>
__global__ void fill_uniform(T* out, int64_t n, uint32_t seed, float scale) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
  h ^= h >> 16, h *= 0x85ebca6bu, h ^= h >> 13, h *= 0xc2b2ae35u, h ^= h >> 16;
  const float u = (h >> 8) * (1.0f / 16777216.0f);  // [0, 1)
  out[i] = static_cast<T>((2.0f * u - 1.0f) * scale);
}

template <typename T>
T* device_uniform(int64_t n, uint32_t seed, float scale) {
  T* p = nullptr;
  check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc");
  fill_uniform<<<static_cast<unsigned>((n + 255) / 256), 256>>>(p, n, seed, scale);
  check(cudaGetLastError(), "fill_uniform");
  return p;
}

template <typename T>
T* device_empty(int64_t n) {
  T* p = nullptr;
  check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc");
  return p;
}

// The GELU forward kernel of the present path: h = z * (1 + erf(z / sqrt 2)) / 2, in float32,
// rounded once; 8 bf16 per thread (one 16-byte load and store), as an elementwise kernel runs.
__global__ void gelu_erf_bf16(const bf16* z, bf16* h, int64_t n8) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n8) return;
  uint4 in = reinterpret_cast<const uint4*>(z)[i], out;
  const bf16* zi = reinterpret_cast<const bf16*>(&in);
  bf16* ho = reinterpret_cast<bf16*>(&out);
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float v = __bfloat162float(zi[k]);
    ho[k] = __float2bfloat16(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
  }
  reinterpret_cast<uint4*>(h)[i] = out;
}

double gelu_erf(double z) { return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0))); }
double gelu_tanh(double z) {
  return 0.5 * z * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
}
double dgelu_erf(double z) { return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))) + z * std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI); }
double dgelu_tanh(double z) {
  const double c = std::sqrt(2.0 / M_PI), u = c * (z + 0.044715 * z * z * z), t = std::tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * z * z);
}

// One cublasLtMatmul, column-major as cuBLAS sees it: D (m x n, ld m) = op(A) op(B) (+ epilogue),
// bf16 inputs, float32 accumulation, D of type `d_type`. Row-major callers pass their matrices
// transposed (a row-major M x N matrix is a column-major N x M one).
struct Matmul {
  cublasLtHandle_t lt;
  void* workspace;
  size_t workspace_bytes;
  cublasOperation_t ta, tb;
  int64_t m, n, k, lda, ldb;
  cudaDataType_t d_type = CUDA_R_16BF;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // BIAS: input of m; BGRAD: output of m
  void* aux = nullptr;         // GELU input (m x n, ld m): written by GELU_AUX_BIAS, read by DGELU_BGRAD
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulHeuristicResult_t algo{};

  // Whether cuBLASLt has an algorithm for this product and epilogue.
  bool plan() {
    check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA");
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB");
    check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "EPILOGUE");
    if (bias) check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "BIAS_POINTER");
    if (aux) {
      const int64_t ld = m;
      check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux), "AUX_POINTER");
      check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld), "AUX_LD");
    }
    check(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda), "layout A");
    check(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb), "layout B");
    check(cublasLtMatrixLayoutCreate(&d, d_type, m, n, m), "layout D");
    cublasLtMatmulPreference_t pref;
    check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                               sizeof workspace_bytes),
          "MAX_WORKSPACE_BYTES");
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, pref, 1, &algo, &found) != CUBLAS_STATUS_SUCCESS) found = 0;
    cublasLtMatmulPreferenceDestroy(pref);
    return found > 0;
  }

  void run(const void* A, const void* B, void* D, cudaStream_t stream) const {
    const float one = 1.0f, zero = 0.0f;
    check(cublasLtMatmul(lt, desc, &one, A, a, B, b, &zero, D, d, D, d, &algo.algo, workspace, workspace_bytes, stream),
          "cublasLtMatmul");
  }
};

// Milliseconds per call of `work`, the mean over `reps` calls after 5 warm-up calls.
template <typename Work>
double time_ms(Work work, int reps = 30) {
  for (int i = 0; i < 5; ++i) work();
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0), cudaEventCreate(&t1);
  cudaEventRecord(t0);
  for (int i = 0; i < reps; ++i) work();
  cudaEventRecord(t1);
  check(cudaEventSynchronize(t1), "timing");
  float ms = 0;
  cudaEventElapsedTime(&ms, t0, t1);
  cudaEventDestroy(t0), cudaEventDestroy(t1);
  return ms / reps;
}

template <typename T>
std::vector<float> to_host(const T* p, int64_t n) {
  std::vector<T> raw(n);
  check(cudaMemcpy(raw.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(raw[i]);
  return out;
}

// Largest |a - b| / max |b|.
double relative_max(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(double(a[i]) - b[i])), scale = std::max(scale, std::fabs(double(b[i])));
  return diff / std::max(scale, 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t M = argc > 1 ? std::atoll(argv[1]) : 256 * 197, D = 384, F = 1536;  // rows, width, hidden
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  cublasLtHandle_t lt;
  check(cublasLtCreate(&lt), "cublasLtCreate");
  const size_t ws_bytes = 32u << 20;
  void* ws = device_empty<char>(ws_bytes);
  const cudaStream_t stream = nullptr;

  // Weights scaled by 1/sqrt(fan-in) so that Z spreads over about [-3, 3], where GELU bends.
  bf16* X = device_uniform<bf16>(M * D, 1, 1.0f);
  bf16* W1 = device_uniform<bf16>(F * D, 2, 3.0f / std::sqrt(float(D)));
  bf16* b1 = device_uniform<bf16>(F, 3, 0.5f);
  bf16* W2 = device_uniform<bf16>(D * F, 4, 3.0f / std::sqrt(float(F)));
  bf16* dY = device_uniform<bf16>(M * D, 5, 1.0f);
  bf16 *Z = device_empty<bf16>(M * F), *H = device_empty<bf16>(M * F), *Zf = device_empty<bf16>(M * F),
       *Hf = device_empty<bf16>(M * F), *dH = device_empty<bf16>(M * F), *dZ = device_empty<bf16>(M * F),
       *dZf = device_empty<bf16>(M * F), *db_fused = device_empty<bf16>(F);
  float* db = device_empty<float>(F);
  const int sms = prop.multiProcessorCount;
  float* partial = device_empty<float>(int64_t(vitlab::kernels::bias_grad_partial_rows(M, F, sms, true)) * F);

  // fc1 forward, (M x F) row-major = column-major (F x M): W1 (F x D row-major) is A^T, X is B.
  // The bias has the output's type.
  auto fc1 = [&](cublasLtEpilogue_t e, cudaDataType_t t, int64_t n, const void* bias, void* aux) {
    return Matmul{lt, ws, ws_bytes, CUBLAS_OP_T, CUBLAS_OP_N, F, n, D, D, D, t, e, bias, aux};
  };
  // fc1 backward up to dZ: dH (M x F row-major) = dY W2: column-major (F x M) = W2^T (F x D, which
  // is W2 row-major as stored) times dY^T (D x M).
  auto dgrad = [&](cublasLtEpilogue_t e, cudaDataType_t t, int64_t n, void* bias_grad, void* aux) {
    return Matmul{lt, ws, ws_bytes, CUBLAS_OP_N, CUBLAS_OP_N, F, n, D, F, D, t, e, bias_grad, aux};
  };
  auto planned = [](Matmul mm, const char* what) {
    if (!mm.plan()) {
      std::fprintf(stderr, "lt_epilogues: cuBLASLt has no algorithm for %s\n", what);
      std::exit(1);
    }
    return mm;
  };

  // 1. Which GELU: float32 outputs of 1024 rows (-1: cuBLASLt has no float32 algorithm for it).
  const int64_t m32 = 1024;
  float *H32 = device_empty<float>(m32 * F), *Z32 = device_empty<float>(m32 * F), *P32 = device_empty<float>(m32 * F),
        *G32 = device_empty<float>(m32 * F), *db32 = device_empty<float>(F), *b1_32 = device_empty<float>(F);
  {
    const auto b = to_host(b1, F);
    check(cudaMemcpy(b1_32, b.data(), F * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  double fwd_erf = -1, fwd_tanh = -1, bwd_erf = -1, bwd_tanh = -1;
  Matmul f32 = fc1(CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUDA_R_32F, m32, b1_32, Z32);
  if (f32.plan()) {
    f32.run(W1, X, H32, stream);
    const auto h = to_host(H32, m32 * F), z = to_host(Z32, m32 * F);
    fwd_erf = fwd_tanh = 0;
    for (int64_t i = 0; i < m32 * F; ++i) {
      fwd_erf = std::max(fwd_erf, std::fabs(h[i] - gelu_erf(z[i])));
      fwd_tanh = std::max(fwd_tanh, std::fabs(h[i] - gelu_tanh(z[i])));
    }
    Matmul plain = dgrad(CUBLASLT_EPILOGUE_DEFAULT, CUDA_R_32F, m32, nullptr, nullptr);  // dH alone
    Matmul fused = dgrad(CUBLASLT_EPILOGUE_DGELU_BGRAD, CUDA_R_32F, m32, db32, Z32);
    if (plain.plan() && fused.plan()) {
      plain.run(W2, dY, P32, stream);
      fused.run(W2, dY, G32, stream);
      const auto p = to_host(P32, m32 * F), g = to_host(G32, m32 * F);
      bwd_erf = bwd_tanh = 0;
      for (int64_t i = 0; i < m32 * F; ++i) {
        bwd_erf = std::max(bwd_erf, std::fabs(g[i] - p[i] * dgelu_erf(z[i])));
        bwd_tanh = std::max(bwd_tanh, std::fabs(g[i] - p[i] * dgelu_tanh(z[i])));
      }
    }
  }
  auto form = [](double e, double t) {
    if (e < 0) return "not measured (no float32 algorithm)";
    return e < 1e-5 && e < t ? "erf" : t < 1e-5 && t < e ? "tanh" : "neither";
  };

  // 2. The forward, bf16, the full batch.
  const Matmul fwd_bias = planned(fc1(CUBLASLT_EPILOGUE_BIAS, CUDA_R_16BF, M, b1, nullptr), "fc1 with BIAS");
  const Matmul fwd_fused = planned(fc1(CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUDA_R_16BF, M, b1, Zf), "fc1 with GELU_AUX_BIAS");
  const int64_t n8 = M * F / 8;
  const double t_fwd_now = time_ms([&] {
    fwd_bias.run(W1, X, Z, stream);
    gelu_erf_bf16<<<static_cast<unsigned>((n8 + 255) / 256), 256, 0, stream>>>(Z, H, n8);
  });
  const double t_fwd_product = time_ms([&] { fwd_bias.run(W1, X, Z, stream); });
  const double t_fwd_fused = time_ms([&] { fwd_fused.run(W1, X, Hf, stream); });

  // 3. The backward to dZ and db1, bf16, the full batch.
  const Matmul bwd_plain = planned(dgrad(CUBLASLT_EPILOGUE_DEFAULT, CUDA_R_16BF, M, nullptr, nullptr), "dH");
  const Matmul bwd_fused = planned(dgrad(CUBLASLT_EPILOGUE_DGELU_BGRAD, CUDA_R_16BF, M, db_fused, Z), "dH with DGELU_BGRAD");
  const double t_bwd_now = time_ms([&] {
    bwd_plain.run(W2, dY, dH, stream);
    vitlab::kernels::gelu_backward_column_sum_bf16(dH, Z, dZ, partial, db, M, F, /*tanh=*/false, sms, stream);
  });
  const double t_bwd_product = time_ms([&] { bwd_plain.run(W2, dY, dH, stream); });
  const double t_bwd_fused = time_ms([&] { bwd_fused.run(W2, dY, dZf, stream); });
  check(cudaDeviceSynchronize(), "bf16 runs");

  // The fused results against the present ones (both computed from the same Z).
  const double h_rel = relative_max(to_host(Hf, M * F), to_host(H, M * F));
  const double z_rel = relative_max(to_host(Zf, M * F), to_host(Z, M * F));
  const double dz_rel = relative_max(to_host(dZf, M * F), to_host(dZ, M * F));
  const double db_rel = relative_max(to_host(db_fused, F), to_host(db, F));

  const double flop = 2.0 * M * D * F;
  std::printf(
      "{\"device\": \"%s\", \"rows\": %lld, \"dim\": %lld, \"hidden\": %lld,\n"
      " \"gelu_forward_form\": \"%s\", \"gelu_forward_max_abs_vs_erf\": %.3g, \"gelu_forward_max_abs_vs_tanh\": %.3g,\n"
      " \"gelu_backward_form\": \"%s\", \"dgelu_max_abs_vs_erf\": %.3g, \"dgelu_max_abs_vs_tanh\": %.3g,\n"
      " \"forward_ms\": {\"bias_product_then_gelu_kernel\": %.4f, \"bias_product_alone\": %.4f, \"gelu_aux_bias_fused\": %.4f},\n"
      " \"backward_ms\": {\"product_then_vitlab_gelu_bias_grad_kernel\": %.4f, \"product_alone\": %.4f, \"dgelu_bgrad_fused\": %.4f},\n"
      " \"product_tflops\": {\"forward_fused\": %.1f, \"backward_fused\": %.1f},\n"
      " \"fused_vs_now_relative_max\": {\"H\": %.3g, \"Z\": %.3g, \"dZ\": %.3g, \"db1\": %.3g}}\n",
      prop.name, static_cast<long long>(M), static_cast<long long>(D), static_cast<long long>(F), form(fwd_erf, fwd_tanh),
      fwd_erf, fwd_tanh, form(bwd_erf, bwd_tanh), bwd_erf, bwd_tanh, t_fwd_now, t_fwd_product, t_fwd_fused, t_bwd_now,
      t_bwd_product, t_bwd_fused, flop / t_fwd_fused / 1e9, flop / t_bwd_fused / 1e9, h_rel, z_rel, dz_rel, db_rel);
  return 0;
}
