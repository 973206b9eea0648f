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

}  // namespace vitlab
