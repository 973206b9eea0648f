#include "vitlab/train/optim.h"

#include <cmath>

#include "vitlab/compat.h"

namespace vitlab {

torch::Tensor FusedAdamW::step(LossClosure closure) {
  if (!compat::kHasFusedAdamW) return torch::optim::AdamW::step(std::move(closure));
  for (const auto& group : param_groups())
    for (const auto& p : group.params())
      if (!p.is_cuda() || p.device() != param_groups()[0].params()[0].device() || p.scalar_type() != torch::kFloat ||
          (p.grad().defined() && p.grad().is_sparse()))
        return torch::optim::AdamW::step(std::move(closure));
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state()[compat::optimizer_state_key(state(), p)];
      if (!slot) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      // The kernel counts steps in a device tensor; the state keeps the integer for
      // checkpoints. The tensor is rebuilt from it after a reload (it is filled, not copied).
      auto& counter = counters_[p.unsafeGetTensorImpl()];
      if (counter.step != s.step())
        counter.device_step = torch::empty({}, p.options()).fill_(static_cast<double>(s.step()));
      s.step(s.step() + 1);
      counter.step = s.step();
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      steps.push_back(counter.device_step);
    }
    if (params.empty()) continue;
    TORCH_CHECK(!o.amsgrad(), "FusedAdamW: amsgrad is not used by vitlab");
    if (device_lr_.defined())
      compat::fused_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, device_lr_, std::get<0>(o.betas()),
                          std::get<1>(o.betas()), o.weight_decay(), o.eps());
    else
      compat::fused_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, o.lr(), std::get<0>(o.betas()),
                          std::get<1>(o.betas()), o.weight_decay(), o.eps());
  }
  return loss;
}

void FusedAdamW::count_replayed_step() {
  for (auto& group : param_groups())
    for (auto& p : group.params()) {
      auto found = state().find(compat::optimizer_state_key(state(), p));
      if (found == state().end()) continue;
      auto& s = static_cast<torch::optim::AdamWParamState&>(*found->second);
      s.step(s.step() + 1);
      counters_[p.unsafeGetTensorImpl()].step = s.step();  // the device counter advanced in the graph
    }
}

void clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  // Multi-tensor kernels on CUDA: a norm and a multiply per parameter would be ~300 launches
  // a step, a visible share of a small model's host-bound step.
  const auto norms = torch::_foreach_norm(grads, 2);
  auto total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  compat::foreach_mul_(grads, coef);
}

std::unique_ptr<FusedAdamW> make_optimizer(ViT& model, const TrainConfig& cfg) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    // timm's no_weight_decay: biases, norms and gammas, the position table, the class and
    // distillation tokens (register tokens decay, as in timm).
    const bool skip = p.value().dim() <= 1 || p.key() == "pos_embed" || p.key() == "cls_token" || p.key() == "dist_token";
    (skip ? no_decay : decay).push_back(p.value());
  }
  auto opts = torch::optim::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(cfg.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
  return std::make_unique<FusedAdamW>(std::move(groups), opts);
}

double lr_at(int64_t step, int64_t total, int64_t warmup, const TrainConfig& cfg) {
  if (step < warmup) return cfg.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double t = total > warmup ? static_cast<double>(step - warmup) / static_cast<double>(total - warmup) : 1.0;
  return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + std::cos(M_PI * std::min(t, 1.0)));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

}  // namespace vitlab
