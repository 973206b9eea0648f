#pragma once
// Data parallelism over processes (DESIGN section 6): one process per device, launched with the
// torchrun / Slurm variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Every
// process holds the whole model; each step each process takes its slice of the global batch,
// and the gradients are averaged over processes (c10d: NCCL between GPUs, Gloo between CPUs),
// so the update equals one process's on the whole batch. Backend: Gloo, between CPU processes.
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
};

// Whether this build has Gloo: its headers are needed at build time (Debian's libgloo-dev).
// NCCL (several GPUs) is not built yet.
bool has_gloo();

class ProcessGroupHolder;

class DataParallel {
 public:
  // Connects to the other processes (rank 0 serves the rendezvous store) through Gloo.
  DataParallel(const DistEnv& env, const torch::Device& device);
  ~DataParallel();
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  const char* backend() const { return backend_; }
  // Copies rank 0's tensors into every process's.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Replaces each gradient by its mean over processes, in flat buckets of about 25 MB.
  void average_gradients(const std::vector<torch::Tensor>& params);
  // Sums `t` over processes, in place.
  void sum(torch::Tensor& t);
  void barrier();

 private:
  DistEnv env_;
  const char* backend_;
  std::unique_ptr<ProcessGroupHolder> pg_;
};

}  // namespace vitlab
