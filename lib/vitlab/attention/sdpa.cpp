#include "vitlab/attention/sdpa.h"

#include "vitlab/compat.h"

namespace vitlab {

torch::Tensor widen_heads(const torch::Tensor& t, int64_t heads) {
  const int64_t B = t.size(0), g = t.size(1), M = t.size(2), e = t.size(3);
  if (g == heads) return t;
  TORCH_CHECK(heads % g == 0, "widen_heads: ", g, " key/value heads do not divide ", heads, " query heads");
  return t.unsqueeze(2).expand({B, g, heads / g, M, e}).reshape({B, heads, M, e});  // (B, h, M, e)
}

torch::Tensor softmax_values(const torch::Tensor& scores, const torch::Tensor& v) {
  // Softmax in at least float32 so reduced-precision inputs do not lose the normaliser.
  auto probs = torch::softmax(scores, -1, scores.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat);
  return torch::matmul(probs.to(v.scalar_type()), widen_heads(v, scores.size(1)));  // (B, h, N, f)
}

torch::Tensor sdpa_composed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  return softmax_values(torch::matmul(q, widen_heads(k, q.size(1)).transpose(-2, -1)) * scale, v);  // (B, h, N, M)
}

namespace {

// Where the flash kernel runs grouped keys/values itself: 16-bit CUDA tensors with head widths
// it takes. Elsewhere enable_gqa would send the call to the slow math kernel.
bool flash_takes_groups(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (!compat::kHasSdpaGqa || !q.is_cuda()) return false;
  const auto t = q.scalar_type();
  if (t != torch::kBFloat16 && t != torch::kHalf) return false;
  if (k.scalar_type() != t || v.scalar_type() != t) return false;
  auto ok = [](int64_t w) { return w % 8 == 0 && w <= 256; };
  return ok(q.size(-1)) && ok(v.size(-1)) && q.size(-1) == v.size(-1);
}

}  // namespace

torch::Tensor sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  if constexpr (!compat::kHasFusedSdpa) return sdpa_composed(q, k, v, scale);
  const int64_t h = q.size(1);
  if (k.size(1) != h && flash_takes_groups(q, k, v)) return compat::fused_sdpa(q, k, v, scale, /*grouped=*/true);
  return compat::fused_sdpa(q, widen_heads(k, h), widen_heads(v, h), scale, /*grouped=*/false);
}

const char* sdpa_path() { return compat::kHasFusedSdpa ? "fused" : "composed"; }

}  // namespace vitlab
