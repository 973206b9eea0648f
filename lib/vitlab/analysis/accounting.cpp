#include "vitlab/analysis/accounting.h"

#include "vitlab/error.h"

namespace vitlab {

static bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

ParamBreakdown count_parameters(ViT& model) {
  ParamBreakdown b;
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const int64_t n = p.value().numel();
    b.total += n;
    if (starts_with(name, "patch_embed.") || name == "cls_token" || name == "dist_token" || name == "reg_token" ||
        name == "pos_embed")
      b.embedding += n;
    else if (name.find(".attn.") != std::string::npos)
      b.attention += n;
    else if (name.find(".mlp.") != std::string::npos)
      b.mlp += n;
    else if (starts_with(name, "head.") || starts_with(name, "head_dist."))
      b.head += n;
    else if (name.find("norm") != std::string::npos || name.find(".ls1.") != std::string::npos ||
             name.find(".ls2.") != std::string::npos)
      b.norms += n;  // the LayerNorms' affine parameters and LayerScale's gammas: per-channel scales
    else
      fail("accounting: parameter '", name, "' belongs to no component");
  }
  b.attention_per_layer = b.attention / model->cfg.depth;
  return b;
}

json ParamBreakdown::to_json() const {
  return json{{"total", total}, {"embedding", embedding}, {"attention", attention},
              {"attention_per_layer", attention_per_layer}, {"mlp", mlp}, {"norms", norms}, {"head", head}};
}

double flops_per_image(ViT& model) {
  const auto& c = model->cfg;
  const double n = c.num_tokens(), d = c.dim;
  double f = 2.0 * c.num_patches() * c.in_chans * c.patch_size * c.patch_size * d;  // patch projection
  for (const auto& b : *model->blocks) {
    f += n * b->as<Block>()->attn->flops_per_token(c.num_tokens());
    f += n * 2.0 * d * (c.mlp_hidden() + c.mlp_inner());  // fc1 and fc2
  }
  return f + (c.dist_head ? 2 : 1) * 2.0 * d * c.num_classes;  // the head(s) on the pooled token(s)
}

int64_t kv_floats_per_token(ViT& model) {
  int64_t kv = 0;
  for (const auto& b : *model->blocks) kv += b->as<Block>()->attn->kv_floats_per_token();
  return kv;
}

json accounting_json(ViT& model) {
  auto& first = model->blocks[0]->as<Block>()->attn;
  return json{{"params", count_parameters(model).to_json()},
              {"flops_per_image", flops_per_image(model)},
              {"kv_floats_per_token", kv_floats_per_token(model)},
              {"attention", first->describe()}};
}

json accounting_of(const ModelConfig& config) {
  ViT model(config);
  return accounting_json(model);
}

}  // namespace vitlab
