#pragma once
// Device selection, CPU threads, synchronisation and memory statistics.
#include <torch/torch.h>

#include <string>

namespace vitlab {

// "auto" -> CUDA when available, else CPU; "cuda" without CUDA is an error naming train.device.
torch::Device resolve_device(const std::string& name);
// Sets LibTorch's intra-op threads (0: all cores) and returns the count in use.
int configure_threads(int requested);
std::string device_name(const torch::Device& device);
void synchronize(const torch::Device& device);
void reset_peak_memory(const torch::Device& device);
// Peak bytes allocated on a CUDA device since the last reset; peak resident memory of the
// process on CPU.
int64_t peak_memory_bytes(const torch::Device& device);
// Peak bytes the caching allocator held on a CUDA device since the last reset (allocated or
// cached, CUDA graphs' memory pools included); 0 on CPU.
int64_t peak_reserved_bytes(const torch::Device& device);
// Whether a precision setting ("auto", "fp32", "bf16") means bf16 autocast on `device`:
// "auto" is bf16 on CUDA and float32 elsewhere (bf16 on these CPUs is emulated and slower).
bool uses_bf16(const std::string& precision, const torch::Device& device);
// What the matrix products run in: "bf16" (autocast), "tf32" (float32 on CUDA with TF32) or "fp32".
std::string math_precision(const std::string& precision, bool tf32, const torch::Device& device);
// TF32 tensor cores for float32 matrix products and convolutions on CUDA (no effect on CPU).
void configure_tf32(bool on);

}  // namespace vitlab
