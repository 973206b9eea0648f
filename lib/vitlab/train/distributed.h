#pragma once
// Data parallelism over processes (DESIGN section 6): one process per device, launched with the
// torchrun / Slurm variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Every
// process holds the whole model; each step each process takes its slice of the global batch,
// and the gradients are averaged over processes (c10d: NCCL between GPUs, Gloo between CPUs),
// so the update equals one process's on the whole batch. The averaging runs in buckets that
// start as soon as the backward has produced their gradients, overlapping the backward.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace vitlab {

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool active() const { return world > 1; }
  // From the environment; unset means one process. Errors name the variable.
  static DistEnv from_environment();
  // The device this process uses when `requested` (auto, cpu, cuda, cuda:N) is asked for:
  // with several processes, "cuda" and "auto" mean this process's GPU, cuda:LOCAL_RANK.
  std::string device(const std::string& requested) const;
};

// Whether this build can join a group on the CPU (Gloo: its headers are needed at build time,
// Debian's libgloo-dev) and on CUDA devices (NCCL: LibTorch with CUDA and nccl.h).
bool has_gloo();
bool has_nccl();

class DataParallel {
 public:
  // Connects to the other processes (rank 0 serves the rendezvous store): NCCL on CUDA
  // devices, Gloo on the CPU.
  DataParallel(const DistEnv& env, const torch::Device& device);
  ~DataParallel();
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  const char* backend() const;
  // Copies rank 0's values into every process's `params` and hooks their gradients: from now
  // on each backward starts the all-reduce of a bucket (about 25 MB) as soon as all of its
  // gradients exist. Attaching other parameters later detaches these.
  void attach(const std::vector<torch::Tensor>& params);
  // After the backward: waits for the buckets and replaces each gradient by its mean over
  // processes (on CUDA the wait is the stream's, not the host's).
  void average_gradients();
  // Sums `t` over processes, in place.
  void sum(torch::Tensor& t);
  // Returns once every process has called it.
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vitlab
