#include "vitlab/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>

#include "vitlab/error.h"

#ifdef VITLAB_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
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

bool has_gloo() {
#ifdef VITLAB_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

class ProcessGroupHolder {
 public:
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

DataParallel::DataParallel(const DistEnv& env, const torch::Device& device)
    : env_(env), backend_("gloo"), pg_(std::make_unique<ProcessGroupHolder>()) {
  if (device.is_cuda())
    fail("WORLD_SIZE=", env.world, ": data parallel on CUDA (NCCL) is not built yet; on the CPU it runs through Gloo");
  if (!has_gloo())
    fail("WORLD_SIZE=", env.world, ": data parallel on the CPU needs Gloo (Debian: libgloo-dev, then rebuild)");
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world;
  so.waitWorkers = true;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
#ifdef VITLAB_HAVE_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
  pg_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world, opts);
#endif
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t.detach()};
    pg_->pg->broadcast(one)->wait();
  }
}

void DataParallel::average_gradients(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  constexpr int64_t kBucketBytes = 25 << 20;
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat{torch::cat([&] {
      std::vector<torch::Tensor> v;
      for (const auto& g : bucket) v.push_back(g.reshape(-1));
      return v;
    }())};
    pg_->pg->allreduce(flat)->wait();
    flat[0].div_(env_.world);
    int64_t at = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].narrow(0, at, g.numel()).view_as(g));
      at += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    const auto& g = p.grad();
    if (!bucket.empty() && (g.scalar_type() != bucket.front().scalar_type() || bytes >= kBucketBytes)) flush();
    bucket.push_back(g);
    bytes += g.numel() * g.element_size();
  }
  flush();
}

void DataParallel::sum(torch::Tensor& t) {
  std::vector<torch::Tensor> one{t};
  pg_->pg->allreduce(one)->wait();
}

void DataParallel::barrier() { pg_->pg->barrier()->wait(); }

}  // namespace vitlab
