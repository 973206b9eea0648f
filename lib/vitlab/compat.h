#pragma once
// The only place that knows LibTorch 1.13 (Debian, CPU) from 2.x (pip wheels, CUDA).
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>

#define VITLAB_TORCH2 (TORCH_VERSION_MAJOR >= 2)
#define VITLAB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class Backend;
class ProcessGroup;
}  // namespace c10d

namespace vitlab::compat {

// The class c10d's communication backends (Gloo, NCCL) derive from: LibTorch 2.0 split the
// process group into a front end and per-backend Backends.
#if VITLAB_TORCH2
using CommBackend = c10d::Backend;
#else
using CommBackend = c10d::ProcessGroup;
#endif

// True where at::scaled_dot_product_attention (flash / memory-efficient kernels) exists.
constexpr bool kHasFusedSdpa = VITLAB_TORCH2;

// softmax(q k^T * scale) v through the fused kernel. Shapes (B, h, N, d_qk) x (B, g, M, d_qk)
// x (B, g, M, d_v); g < h only with `grouped` (kHasSdpaGqa). Only call when kHasFusedSdpa.
constexpr bool kHasSdpaGqa = VITLAB_TORCH_AT_LEAST(2, 5);
inline torch::Tensor fused_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                double scale, bool grouped) {
#if VITLAB_TORCH_AT_LEAST(2, 5)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/false, scale, /*enable_gqa=*/grouped);
#elif VITLAB_TORCH2
  TORCH_CHECK(!grouped, "grouped-query attention in the fused kernel needs LibTorch 2.5");
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/false, scale);
#else
  (void)q; (void)k; (void)v; (void)scale; (void)grouped;
  TORCH_CHECK(false, "fused scaled-dot-product attention needs LibTorch 2.x");
#endif
}

inline std::string torch_version() { return TORCH_VERSION; }

// Ends a c10d backend's communicators (ProcessGroupNCCL::shutdown from LibTorch 2.4; before,
// the destructor alone, which warns that destroy_process_group() was not called).
template <typename Backend>
void shutdown_backend(Backend& backend) {
#if VITLAB_TORCH_AT_LEAST(2, 4)
  backend.shutdown();
#else
  (void)backend;
#endif
}

// The key of a parameter in an optimizer's state map: LibTorch 1.13 keys by the TensorImpl's
// address printed as text (what c10::guts::to_string gives), later versions by the address.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename StateMap::key_type, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

// Multiplies every tensor by a device scalar: one multi-tensor kernel from LibTorch 2.1 (the
// Tensor overload of _foreach_mul_), one kernel per tensor before.
inline void foreach_mul_(std::vector<torch::Tensor>& tensors, const torch::Tensor& scalar) {
#if VITLAB_TORCH_AT_LEAST(2, 1)
  at::_foreach_mul_(tensors, scalar);
#else
  for (auto& t : tensors) t.mul_(scalar);
#endif
}

// dst[i] = src[i] with a dtype cast: one multi-tensor kernel from LibTorch 2.2 (_foreach_copy_,
// which casts in its fast path when all sources share a dtype and all destinations another).
inline void foreach_copy_(std::vector<torch::Tensor>& dst, const std::vector<torch::Tensor>& src) {
#if VITLAB_TORCH_AT_LEAST(2, 2)
  at::_foreach_copy_(dst, src);
#else
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
#endif
}

// a b for bf16 or fp16 CUDA matrices, written in float32 from the product's float32 sums
// (LibTorch 2.8's mm with out_dtype); before that the bf16 product cast to float32.
inline torch::Tensor mm_float(const torch::Tensor& a, const torch::Tensor& b) {
#if VITLAB_TORCH_AT_LEAST(2, 8)
  return at::mm(a, b, at::kFloat);
#else
  return a.mm(b).to(at::kFloat);
#endif
}

// PyTorch's fused AdamW kernel (torch.optim.AdamW(fused=True)), CUDA float32 tensors.
constexpr bool kHasFusedAdamW = VITLAB_TORCH_AT_LEAST(2, 4);

// One AdamW step over lists of tensors; `steps` are float32 device scalars, incremented here
// first, as torch.optim does, since the kernel reads the new step for its bias corrections.
// `lr` is a double, or a float32 device scalar (the kernel's tensor_lr overload), which lets a
// captured CUDA graph follow a schedule changed between replays.
template <typename Lr>
void fused_adamw(std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& grads,
                 std::vector<torch::Tensor>& exp_avgs, std::vector<torch::Tensor>& exp_avg_sqs,
                 std::vector<torch::Tensor>& steps, const Lr& lr, double beta1, double beta2, double weight_decay,
                 double eps) {
#if VITLAB_TORCH_AT_LEAST(2, 4)
  at::_foreach_add_(steps, 1);
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params; (void)grads; (void)exp_avgs; (void)exp_avg_sqs; (void)steps;
  (void)lr; (void)beta1; (void)beta2; (void)weight_decay; (void)eps;
  TORCH_CHECK(false, "the fused AdamW kernel needs LibTorch 2.4 or later");
#endif
}

// Whether bf16 autocast is on for `type` (the state AutocastBf16 below sets).
inline bool autocast_bf16_enabled(c10::DeviceType type) {
#if VITLAB_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(type) && at::autocast::get_autocast_dtype(type) == at::kBFloat16;
#else
  if (type == c10::DeviceType::CUDA) return at::autocast::is_enabled() && at::autocast::get_autocast_gpu_dtype() == at::kBFloat16;
  return at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16;
#endif
}

// bf16 autocast on one device type for the guard's scope (PyTorch's torch.autocast): matrix
// products and the attention kernel run in bf16, reductions and the loss in float32. LibTorch
// 2.4 replaced the per-backend calls by ones taking the device type.
class AutocastBf16 {
 public:
  AutocastBf16(c10::DeviceType type, bool on) : type_(type), on_(on) {
    if (!on_) return;
#if VITLAB_TORCH_AT_LEAST(2, 4)
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
#if VITLAB_TORCH_AT_LEAST(2, 4)
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
