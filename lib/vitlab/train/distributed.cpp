#include "vitlab/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <mutex>

#include "vitlab/compat.h"
#include "vitlab/error.h"

#ifdef VITLAB_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef VITLAB_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace vitlab {

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi) fail(name, "=", v, ": expected an integer in [", lo, ", ", hi, "]");
  return static_cast<int>(n);
}

// What an asynchronous collective returns (c10d::Work; ProcessGroup::Work in LibTorch 1.13).
using Work = decltype(std::declval<compat::CommBackend&>().allreduce(std::declval<std::vector<at::Tensor>&>()));

}  // namespace

DistEnv DistEnv::from_environment() {
  DistEnv e;
  e.world = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  e.rank = env_int("RANK", 0, 0, e.world - 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, 1 << 20);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  if (e.world > 1 && !std::getenv("MASTER_PORT"))
    fail("WORLD_SIZE=", e.world, ": set MASTER_ADDR and MASTER_PORT as well (rank 0 listens there)");
  return e;
}

std::string DistEnv::device(const std::string& requested) const {
  if (!active()) return requested;
  if (requested == "cuda" || (requested == "auto" && torch::cuda::is_available()))
    return "cuda:" + std::to_string(local_rank);
  return requested;
}

bool has_gloo() {
#ifdef VITLAB_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

bool has_nccl() {
#ifdef VITLAB_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

// Gradients travel in buckets: runs of parameters in reverse registration order (the order
// the backward produces them), each bucket one flat tensor that is all-reduced as one message.
struct DataParallel::Impl {
  struct Slot {  // one parameter
    torch::Tensor param;
    size_t bucket = 0;
    int64_t offset = 0;
    bool filled = false;  // its gradient arrived in this backward
    unsigned hook = 0;
  };
  struct Bucket {
    torch::Tensor flat;  // (numel,) the gradients of its slots, concatenated
    size_t slots = 0, ready = 0;
    Work work;
  };
  static constexpr int64_t kBucketBytes = 25 << 20;

  c10::intrusive_ptr<compat::CommBackend> pg;
  const char* backend = "";
  int world = 1;
  torch::Device device{torch::kCPU};
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  size_t launched = 0;  // buckets launched so far in this backward, always in bucket order
  std::mutex mutex;     // hooks run on the autograd engine's thread

  Work allreduce(torch::Tensor& t) {
    std::vector<torch::Tensor> one{t};
    return pg->allreduce(one);
  }

  void build_buckets(const std::vector<torch::Tensor>& params) {
    std::vector<torch::TensorOptions> options;
    std::vector<int64_t> numel;
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      const torch::Tensor& p = *it;
      if (!p.requires_grad()) continue;
      if (numel.empty() || numel.back() * p.element_size() >= kBucketBytes ||
          options.back().dtype() != p.dtype()) {
        options.push_back(p.options());
        numel.push_back(0);
        buckets.emplace_back();
      }
      slots.push_back({p, buckets.size() - 1, numel.back(), false, 0});
      numel.back() += p.numel();
      buckets.back().slots += 1;
    }
    for (size_t b = 0; b < buckets.size(); ++b) buckets[b].flat = torch::empty({numel[b]}, options[b]);
  }

  void on_gradient(size_t i, const torch::Tensor& grad) {
    torch::NoGradGuard no_grad;
    std::lock_guard<std::mutex> lock(mutex);
    Slot& s = slots[i];
    Bucket& b = buckets[s.bucket];
    b.flat.narrow(0, s.offset, s.param.numel()).copy_(grad.reshape(-1));
    s.filled = true;
    b.ready += 1;
    // Every process launches the same buckets in the same order, as collectives must be.
    while (launched < buckets.size() && buckets[launched].ready == buckets[launched].slots) {
      buckets[launched].work = allreduce(buckets[launched].flat);
      launched += 1;
    }
  }

  void finish() {
    torch::NoGradGuard no_grad;
    std::lock_guard<std::mutex> lock(mutex);
    // Parameters that got no gradient in this backward (unused) count as zero in their bucket.
    for (; launched < buckets.size(); ++launched) {
      for (Slot& s : slots)
        if (s.bucket == launched && !s.filled) buckets[launched].flat.narrow(0, s.offset, s.param.numel()).zero_();
      buckets[launched].work = allreduce(buckets[launched].flat);
    }
    for (Bucket& b : buckets) {
      b.work->wait();
      b.work.reset();
      b.flat.div_(world);
      b.ready = 0;
    }
    for (Slot& s : slots) {
      if (s.filled && s.param.grad().defined())
        s.param.mutable_grad().copy_(buckets[s.bucket].flat.narrow(0, s.offset, s.param.numel()).view_as(s.param));
      s.filled = false;
    }
    launched = 0;
  }
};

DataParallel::DataParallel(const DistEnv& env, const torch::Device& device)
    : env_(env), impl_(std::make_unique<Impl>()) {
  impl_->world = env.world;
  impl_->device = device;
  if (device.is_cuda() && !has_nccl())
    fail("WORLD_SIZE=", env.world, ": data parallel on CUDA needs NCCL; this build has none (LibTorch with CUDA and "
         "nccl.h at build time)");
  if (!device.is_cuda() && !has_gloo())
    fail("WORLD_SIZE=", env.world, ": data parallel on the CPU needs Gloo (Debian: libgloo-dev, then rebuild)");
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world;
  so.waitWorkers = true;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  if (device.is_cuda()) {
#ifdef VITLAB_HAVE_NCCL
    c10::cuda::set_device(device.index());  // NCCL binds its communicator to the current device
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world,
                                                            c10d::ProcessGroupNCCL::Options::create());
    impl_->backend = "nccl";
#endif
  } else {
#ifdef VITLAB_HAVE_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world, opts);
    impl_->backend = "gloo";
#endif
  }
}

DataParallel::~DataParallel() {
  for (auto& s : impl_->slots) s.param.remove_hook(s.hook);
#ifdef VITLAB_HAVE_NCCL
  // What torch.distributed.destroy_process_group() does: end NCCL's communicator, once the
  // device's queued work (the last all-reduce) is done; its destructor otherwise warns at every
  // exit. A failure here (a run already stopping on a CUDA error) must not end the process.
  if (auto* nccl = dynamic_cast<c10d::ProcessGroupNCCL*>(impl_->pg.get())) {
    try {
      c10::cuda::device_synchronize();
      compat::shutdown_backend(*nccl);
    } catch (const std::exception&) {
    }
  }
#endif
}

const char* DataParallel::backend() const { return impl_->backend; }

void DataParallel::attach(const std::vector<torch::Tensor>& params) {
  for (auto& s : impl_->slots) s.param.remove_hook(s.hook);  // a model attached before
  impl_->slots.clear();
  impl_->buckets.clear();
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : params) {
      std::vector<torch::Tensor> one{p.detach()};
      impl_->pg->broadcast(one)->wait();
    }
  }
  impl_->build_buckets(params);
  for (size_t i = 0; i < impl_->slots.size(); ++i)
    impl_->slots[i].hook = impl_->slots[i].param.register_hook(
        [impl = impl_.get(), i](const torch::Tensor& grad) { impl->on_gradient(i, grad); });
}

void DataParallel::average_gradients() { impl_->finish(); }

void DataParallel::sum(torch::Tensor& t) { impl_->allreduce(t)->wait(); }

void DataParallel::barrier() {
  // An all-reduce the host waits for: the same on both backends, and NCCL's own barrier
  // has to guess each process's device.
  auto t = torch::zeros({1}, torch::TensorOptions().device(impl_->device));
  sum(t);
  (void)t.item<float>();
}

}  // namespace vitlab
