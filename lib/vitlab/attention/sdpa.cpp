#include "vitlab/attention/sdpa.h"

#include "vitlab/compat.h"

namespace vitlab {

torch::Tensor softmax_values(const torch::Tensor& scores, const torch::Tensor& v) {
  // Softmax in at least float32 so reduced-precision inputs do not lose the normaliser.
  auto probs = torch::softmax(scores, -1, scores.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  return torch::matmul(probs.to(v.scalar_type()), v);  // (B, h, N, f)
}

torch::Tensor sdpa_composed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  return softmax_values(torch::matmul(q, k.transpose(-2, -1)) * scale, v);  // scores (B, h, N, M)
}

torch::Tensor sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  if constexpr (compat::kHasFusedSdpa) return compat::fused_sdpa(q, k, v, scale);
  return sdpa_composed(q, k, v, scale);
}

const char* sdpa_path() { return compat::kHasFusedSdpa ? "fused" : "composed"; }

}  // namespace vitlab
