#pragma once
// The training loop (nanoGPT-plain): data on the device, AdamW + warm-up/cosine, per-epoch
// validation and checkpoint, final test, results JSON. Every random draw of step s comes from
// generators seeded with (seed, s), so a run resumed from any epoch's checkpoint ends bit for
// bit where the uninterrupted run ends (on the same device and thread count).
#include <string>

#include "vitlab/config.h"

namespace vitlab {

struct TrainRequest {
  RunConfig cfg;
  std::string out_dir;
  bool resume = false;  // continue from out_dir/checkpoint if it exists
  // Start from this checkpoint's weights (fine-tuning); cfg.model must be its model.
  std::string init_from;
};

// Runs the training and returns the results record, also written to out_dir/result.json.
json train(const TrainRequest& request);

}  // namespace vitlab
