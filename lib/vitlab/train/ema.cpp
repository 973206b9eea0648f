#include "vitlab/train/ema.h"

namespace vitlab {

Ema::Ema(ViT& model, double decay) : decay_(decay) {
  for (const auto& p : model->parameters()) shadow_.push_back(p.detach().clone());
}

void Ema::update(ViT& model) {
  torch::NoGradGuard no_grad;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) shadow_[i].lerp_(params[i].detach(), 1.0 - decay_);
}

void Ema::copy_to(ViT& model) const {
  torch::NoGradGuard no_grad;
  auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(shadow_[i]);
}

}  // namespace vitlab
