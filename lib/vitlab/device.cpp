#include "vitlab/device.h"

#include <sys/resource.h>

#include <fstream>
#include <thread>

#include "vitlab/error.h"

#ifdef VITLAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace vitlab {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::Device d(torch::kCPU);
  try {
    d = torch::Device(name);
  } catch (const c10::Error&) {
    fail("train.device: '", name, "' is not a device (auto, cpu, cuda, cuda:N)");
  }
  if (d.is_cuda()) {
    if (!torch::cuda::is_available()) fail("train.device: '", name, "' asked for, but no CUDA device is available");
    const int64_t index = d.has_index() ? d.index() : 0;
    if (index >= static_cast<int64_t>(torch::cuda::device_count()))
      fail("train.device: '", name, "': only ", torch::cuda::device_count(), " CUDA devices");
    d = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return d;
}

int configure_threads(int requested) {
  // Debian's LibTorch starts with one thread: always set it explicitly.
  int n = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

std::string device_name(const torch::Device& device) {
#ifdef VITLAB_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  if (device.is_cpu()) {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("model name", 0) == 0) return "CPU: " + line.substr(line.find(':') + 2);
    return "CPU";
  }
  return device.str();
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

#ifdef VITLAB_WITH_CUDA
namespace {
// "cuda" without an index means the current device, as in LibTorch (the allocator refuses -1).
c10::DeviceIndex cuda_index(const torch::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
constexpr size_t kAllPools = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
}  // namespace
#endif

void reset_peak_memory(const torch::Device& device) {
#ifdef VITLAB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(device));
#else
  (void)device;
#endif
}

int64_t peak_memory_bytes(const torch::Device& device) {
#ifdef VITLAB_WITH_CUDA
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device)).allocated_bytes[kAllPools].peak;
#endif
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int64_t peak_reserved_bytes(const torch::Device& device) {
#ifdef VITLAB_WITH_CUDA
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(device)).reserved_bytes[kAllPools].peak;
#endif
  (void)device;
  return 0;
}

bool uses_bf16(const std::string& precision, const torch::Device& device) {
  return precision == "bf16" || (precision == "auto" && device.is_cuda());
}

std::string math_precision(const std::string& precision, bool tf32, const torch::Device& device) {
  if (uses_bf16(precision, device)) return "bf16";
  return tf32 && device.is_cuda() ? "tf32" : "fp32";
}

void configure_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

}  // namespace vitlab
