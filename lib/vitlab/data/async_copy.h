#pragma once
// Small host tensors (labels, per-image augmentation arguments) onto the training device without
// making the host wait: a copy from pageable memory to CUDA waits for the work already queued on
// the stream, so the host could not run ahead of the GPU; a copy from pinned memory is queued
// like a kernel. The caching host allocator keeps each pinned block until its copy is done.
#include <torch/torch.h>

namespace vitlab {

inline torch::Tensor to_device_async(const torch::Tensor& host, const torch::Device& device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace vitlab
