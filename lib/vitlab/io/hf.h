#pragma once
// Hugging Face transformers checkpoints of the ViT family, as the hub ships them: a directory
// with config.json ({"model_type": "vit" | "deit", "architectures": [...], "hidden_size", ...,
// "id2label"}), model.safetensors with transformers' key names, and preprocessor_config.json
// (the image processor: resize, centre crop, mean, std, resample). ViTForImageClassification,
// DeiTForImageClassification (distillation token, class head only) and
// DeiTForImageClassificationWithTeacher (both heads, logits averaged) map onto vitlab's ViT.
#include <torch/torch.h>

#include <map>
#include <string>

#include "vitlab/config.h"

namespace vitlab {

// Whether `j` is a transformers config (it names a model_type) rather than vitlab's or timm's.
bool is_hf_config(const json& j);

// The ModelConfig of a transformers config, with the input normalisation (and nothing else) of
// `preprocessor` (preprocessor_config.json; null: ViTImageProcessor's defaults, mean and std
// 0.5). Another model type or architecture, or an option vitlab's ViT cannot hold, is an error
// naming `where` and the key.
ModelConfig model_from_hf_config(const json& j, const json& preprocessor, const std::string& where);

// The image processor's evaluation transform as data settings: resize to {height, width}
// (data.crop_mode "squash") or the shortest edge ("center"), the centre crop, and the resample
// filter. Null `preprocessor`: ViTImageProcessor's defaults (the whole image to the model's
// size, bilinear).
void apply_hf_eval_transform(const json& preprocessor, const ModelConfig& model, const std::string& where,
                             DataConfig& data);

// A checkpoint's tensors under transformers' names -> vitlab's (timm's) names, one explicit key
// map: query / key / value concatenated into attn.qkv; the rest renamed as they are.
// transformers' pooler (unused by the classifiers, which it also skips) is dropped; any other
// unknown key is an error naming `where` and the key.
std::map<std::string, torch::Tensor> tensors_from_hf(const std::map<std::string, torch::Tensor>& hf,
                                                     const ModelConfig& c, const std::string& where);

// The transformers directory of a vitlab ViT that transformers' classifiers can hold (MHA, class
// token pooling without fc_norm, a learned or sin-cos table written as learned, no LayerScale or
// registers; a distilled model as DeiTForImageClassificationWithTeacher): its config.json, its
// preprocessor_config.json (vitlab's evaluation: the whole image at the model's size, bilinear,
// the model's mean and std), and its tensors under transformers' names (qkv split into query,
// key and value). What transformers cannot hold is an error naming the model.* key.
json hf_config_from_model(const ModelConfig& c);
json hf_preprocessor_from_model(const ModelConfig& c);
std::vector<std::pair<std::string, torch::Tensor>> tensors_to_hf(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const ModelConfig& c);

}  // namespace vitlab
