#pragma once
// Throughput of one model config on synthetic data: training steps exactly as the trainer runs
// them (train/step.h) and inference forwards, timed in windows after a warm-up, with the
// median window reported (robust to one slow window), peak device memory, and achieved FLOP/s
// from the accounting (a training step counts 3x the forward FLOPs).
#include <torch/torch.h>

#include "vitlab/config.h"

namespace vitlab {

class DataParallel;

struct BenchOptions {
  int64_t batch_size = 0;   // 0: train.batch_size
  int warmup_steps = 10;
  int windows = 5;
  int window_steps = 10;
  bool train = true, infer = true;
  double peak_tflops = 0;   // the device's peak for MFU (0: not reported)
  // A dataset spec (folder:DIR, ...): training is also timed fed from its training loader with
  // the config's augmentation, as the trainer feeds it (train_from_data).
  std::string data;
};

// Peak dense bf16 TFLOP/s of known devices by name (0 when unknown).
double known_peak_tflops(const std::string& device_name);

// {attention, params, flops_per_image, batch_size, train: {images_per_s, windows, peak_bytes,
// tflops, mfu}, infer: {...}}; with options.data also train_from_data: {images_per_s, windows,
// data_wait_fraction (the share of the timed host time spent waiting for a batch), vs_synthetic}. With `dp` (training only) every process takes batch_size images
// of a global batch of batch_size x world, and images_per_s counts the global batch.
json bench_config(const RunConfig& cfg, const torch::Device& device, const BenchOptions& options,
                  DataParallel* dp = nullptr);

}  // namespace vitlab
