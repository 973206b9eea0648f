#include "vitlab/train/ema.h"

namespace vitlab {

Ema::Ema(ViT& model, double decay) : decay_(decay) {
  for (const auto& p : model->parameters()) shadow_.push_back(p.detach().clone());
}

void Ema::update(ViT& model) {
  torch::NoGradGuard no_grad;
  // shadow = decay * shadow + (1 - decay) * p, as two multi-tensor kernels: one lerp_ per
  // parameter is ~150 launches a step, a visible share of a small model's host-bound step.
  torch::_foreach_mul_(shadow_, decay_);
  torch::_foreach_add_(shadow_, model->parameters(), 1.0 - decay_);
}

void Ema::copy_to(ViT& model) const {
  torch::NoGradGuard no_grad;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(shadow_[i]);
}

}  // namespace vitlab
