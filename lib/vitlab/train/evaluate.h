#pragma once
// Evaluation of a model on a dataset: loss, top-1, top-5, per-class accuracy, confusion matrix.
#include <torch/torch.h>

#include "vitlab/config.h"
#include "vitlab/data/dataset.h"
#include "vitlab/model/vit.h"
#include "vitlab/train/distributed.h"

namespace vitlab {

struct EvalResult {
  int64_t images = 0;   // evaluated
  int64_t skipped = 0;  // left out: could not be decoded (data.skip_bad_images)
  double loss = 0, top1 = 0, top5 = 0;  // accuracies in percent
  torch::Tensor confusion;              // (classes, classes) int64, rows = true class
  double seconds = 0, images_per_s = 0;
  // With predictions requested, every evaluated image's answer in the data's order (on the CPU):
  // its label (n), the top classes (n, k) and their softmax probabilities (n, k).
  torch::Tensor labels, top_classes, top_probs;
  json to_json(bool detailed) const;    // detailed: per-class accuracy and the confusion matrix
};

class GraphedForward;

// In-memory `data` must already be on the model's device; a streamed one is decoded on the way
// (the evaluation transform). Runs in eval mode without gradients, under
// bf16 autocast when `bf16`; with `graphed` (a GraphedForward of `model` with the same `bf16`,
// train/cuda_graph.h), its full batches replay that CUDA graph of the forward pass. Keep one
// for every evaluation of a run: each capture takes a memory pool of its own, which the caching
// allocator cannot give back during a later capture, so a graph per evaluation grows the
// process's memory by a pool every time (a d 384 model on Fashion-MNIST: 79 GB by epoch 75). With `dp`,
// every process evaluates a contiguous share of whole batches and the sums are reduced: every
// process gets the one-process result (the loss up to the order of its sum).
// `predictions` > 0 also keeps that many top classes of every image (one process only).
EvalResult evaluate(ViT& model, const Dataset& data, int64_t batch_size, bool bf16 = false,
                    GraphedForward* graphed = nullptr, DataParallel* dp = nullptr, int64_t predictions = 0);

}  // namespace vitlab
