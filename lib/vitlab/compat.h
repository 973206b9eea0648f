#pragma once
// The only place that knows LibTorch 1.13 (Debian, CPU) from 2.x (pip wheels, CUDA).
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#define VITLAB_TORCH2 (TORCH_VERSION_MAJOR >= 2)

namespace vitlab::compat {

// True where at::scaled_dot_product_attention (flash / memory-efficient kernels) exists.
constexpr bool kHasFusedSdpa = VITLAB_TORCH2;

// softmax(q k^T * scale) v through the fused kernel. Shapes (B, h, N, d_qk) x (B, h, M, d_qk)
// x (B, h, M, d_v). Only call when kHasFusedSdpa.
inline torch::Tensor fused_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                double scale) {
#if VITLAB_TORCH2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/false, scale);
#else
  (void)q; (void)k; (void)v; (void)scale;
  TORCH_CHECK(false, "fused scaled-dot-product attention needs LibTorch 2.x");
#endif
}

inline std::string torch_version() { return TORCH_VERSION; }

// bf16 autocast on one device type for the guard's scope (PyTorch's torch.autocast): matrix
// products and the attention kernel run in bf16, reductions and the loss in float32. LibTorch
// 2.4 replaced the per-backend calls by ones taking the device type.
class AutocastBf16 {
 public:
  AutocastBf16(c10::DeviceType type, bool on) : type_(type), on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_on_ = at::autocast::is_autocast_enabled(type_);
    was_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
#else
    const bool cuda = type_ == c10::DeviceType::CUDA;
    was_on_ = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    was_dtype_ = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    if (cuda) at::autocast::set_enabled(true), at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    else at::autocast::set_cpu_enabled(true), at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastBf16() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type_, was_on_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
#else
    if (type_ == c10::DeviceType::CUDA) at::autocast::set_enabled(was_on_), at::autocast::set_autocast_gpu_dtype(was_dtype_);
    else at::autocast::set_cpu_enabled(was_on_), at::autocast::set_autocast_cpu_dtype(was_dtype_);
#endif
  }
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  c10::DeviceType type_;
  bool on_;
  bool was_on_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace vitlab::compat
