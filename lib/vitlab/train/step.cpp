#include "vitlab/train/step.h"

#include "vitlab/compat.h"
#include "vitlab/data/augment.h"
#include "vitlab/device.h"
#include "vitlab/seed.h"
#include "vitlab/train/optim.h"

namespace vitlab {

// Under data parallel every process is seeded alike for the step (so that all augment the same
// global batch); what each draws for its own rows alone (dropout and drop-path masks, and the
// augmentation of a slice it decoded itself) must differ between processes: one number from the
// step's generator, mixed with the rank, seeds the rest.
static void seed_for_rank(const DataParallel& dp) {
  const auto base = torch::randint(1LL << 62, {1}, torch::kLong).item<int64_t>();
  torch::manual_seed(mix_seed(static_cast<uint64_t>(base), kSeedRank, static_cast<uint64_t>(dp.rank())));
}

torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return -(targets * torch::log_softmax(logits.to(torch::kFloat), 1)).sum(1).mean();
}

StepOutput train_step(ViT& model, torch::optim::Optimizer& optimizer, Ema* ema, const torch::Tensor& images,
                      const torch::Tensor& labels, const RunConfig& cfg, DataParallel* dp, bool local) {
  if (dp && local) seed_for_rank(*dp);
  Batch in = augment_batch(images, labels, cfg.model, cfg.train);
  if (dp && !local) seed_for_rank(*dp);
  torch::Tensor rows = labels;
  if (dp && !local) {  // this process's slice of the augmented global batch
    const int64_t n = images.size(0) / dp->world(), first = dp->rank() * n;
    in.x = in.x.narrow(0, first, n);              // (B / world, C, H, W)
    in.targets = in.targets.narrow(0, first, n);  // (B / world, classes)
    rows = labels.narrow(0, first, n);
  }
  torch::Tensor logits, loss;
  {
    // Forward and loss under autocast, backward outside it (as torch.autocast is used).
    compat::AutocastBf16 autocast(images.device().type(), uses_bf16(cfg.train.precision, images.device()));
    logits = model->forward(in.x);
    loss = soft_cross_entropy(logits, in.targets);
  }
  optimizer.zero_grad();
  loss.backward();
  if (dp) dp->average_gradients();  // started during the backward
  if (cfg.train.grad_clip > 0) clip_grad_norm(model->parameters(), cfg.train.grad_clip);
  optimizer.step();
  if (ema) ema->update(model);
  return {loss.detach(), logits.detach(), rows};
}

}  // namespace vitlab
