#pragma once
// Throughput of the input pipeline alone: batches of a dataset through the training loader
// (the config's per-image augmentation) and the evaluation loader, delivered on the device,
// with no model. For image folders this is decode + transform + copy, the part that must keep
// up with the GPU.
#include <torch/torch.h>

#include "vitlab/config.h"

namespace vitlab {

// {data, listing_seconds, max_rss_bytes, train: {images_per_s, batches, batch_size},
// train_augmented: {...}, eval: {...}}: `batches` timed batches after `warmup` untimed ones, for
// the training loader alone, the training loader followed by the step's batch augmentation
// (data/augment.h: flip, auto_augment, normalisation, random erasing), and the evaluation loader.
json bench_pipeline(const RunConfig& cfg, const torch::Device& device, int64_t batches, int64_t warmup);

}  // namespace vitlab
