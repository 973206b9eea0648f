#pragma once
// timm's ViT configs: the config.json the Hugging Face hub ships beside a timm model.safetensors,
//   {"architecture": "vit_small_patch16_224.augreg_in21k_ft_in1k", "num_classes": 1000,
//    "global_pool": "token", "model_args": {...}, "pretrained_cfg": {"input_size": [3, 224, 224],
//    "mean": [...], "std": [...], "crop_pct": 0.9, ...}}.
// vitlab's MHA ViT uses timm's parameter names (patch_embed.proj, cls_token, pos_embed,
// blocks.i.{norm1, attn.qkv, attn.proj, ls1, norm2, mlp.fc1, mlp.fc2, ls2}, norm / fc_norm, head),
// so such a checkpoint loads by name once its config is read.
#include "vitlab/config.h"

namespace vitlab {

// Whether `j` is a timm config (it names an architecture) rather than a vitlab ModelConfig.
bool is_timm_config(const json& j);
// The ModelConfig of a timm ViT config: the architecture's sizes and options
// (vit_{tiny,small,base,large,huge,giant}_patch{P}_{S}, _reg{N} register tokens outside the
// position table, _gap average pooling without a class token, _dinov2 with LayerScale at 518 and
// for the giant a SwiGLU MLP, deit_* and deit_*_distilled_* with the distillation token and head),
// then model_args (mlp_layer SwiGLUPacked with act_layer SiLU among them), global_pool (token,
// avg, avgmax), num_classes (0: a backbone without a classifier) and pretrained_cfg's input size,
// mean and std. What vitlab cannot represent (pre-norm, q/k norm, attention pooling, other MLPs
// or activations) is an error naming `where` and the key.
ModelConfig model_from_timm_config(const json& j, const std::string& where);

// timm's evaluation preprocessing from pretrained_cfg: data.crop_pct and data.interpolation
// (timm's ViT defaults, 0.9 and bicubic, where the config is silent) and data.crop_mode
// ("center" or "squash"; timm's "border" is refused).
void apply_timm_eval_transform(const json& j, const std::string& where, DataConfig& data);

// The config.json timm writes beside a hub model.safetensors, for a vitlab ViT that timm's
// VisionTransformer can hold: MHA, learned or sin-cos position table (timm learns one; the
// values carry over), head width dim / heads, LayerNorm eps 1e-6. pretrained_cfg says how vitlab
// evaluates: whole images (crop_pct 1.0), bilinear, the model's mean and std. Anything else is
// an error naming the model.* key.
json timm_config_from_model(const ModelConfig& c);

}  // namespace vitlab
