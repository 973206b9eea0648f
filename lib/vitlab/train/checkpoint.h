#pragma once
// A vitlab checkpoint is a directory (DESIGN section 7): model.safetensors (weights),
// config.json (the full ModelConfig) and, for resumable training, train_state.pt (optimizer,
// EMA, progress). It is written to a temporary directory and renamed into place.
#include <torch/torch.h>

#include <optional>
#include <string>

#include "vitlab/config.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/model/vit.h"
#include "vitlab/train/ema.h"

namespace vitlab {

// Parameters then buffers, by their module path (e.g. "blocks.0.attn.qkv.weight").
NamedTensors model_tensors(ViT& model);

// `optimizer`/`ema` may be null (a weights-only checkpoint); `progress` is the trainer's state.
void save_checkpoint(const std::string& dir, ViT& model, const torch::optim::Optimizer* optimizer,
                     const Ema* ema, const json& progress);
// A timm checkpoint directory as the Hugging Face hub ships one: model.safetensors with timm's
// names and timm's config.json (timm_config_from_model); what timm cannot hold is an error.
void save_timm_checkpoint(const std::string& dir, ViT& model);
// The same as a Hugging Face transformers directory (io/hf.h): model.safetensors with
// transformers' names, config.json, preprocessor_config.json.
void save_hf_checkpoint(const std::string& dir, ViT& model);
// The directory holding a complete checkpoint at `dir` ("" if none): `dir` itself, or the
// previous one (`dir`.old) when a crash hit between the two renames of save_checkpoint.
std::string find_checkpoint(const std::string& dir);

// A checkpoint's config.json, vitlab's ModelConfig, timm's hub config or a transformers config
// (with the preprocessor_config.json beside it); errors name `path`.
ModelConfig checkpoint_config_from_json(const json& j, const std::string& path);
// A transformers checkpoint's preprocessor_config.json in `dir`, or null where it has none.
json hf_preprocessor(const std::string& dir);
ModelConfig read_checkpoint_config(const std::string& dir);
// Copies the file's tensors into the model; every name and shape must match, the first
// mismatch is an Error naming the file and the tensor (beside a transformers config.json, the
// file's names are transformers', mapped by io/hf.h). The one exception: a model built for
// another image size gets the file's learned position table resampled to its grid (timm's
// bicubic resampling; a sin-cos table is recomputed, so the model's own is kept). With
// `fine_tune`, as timm adapts pretrained weights: a classifier (head.*) of another number of
// classes keeps the model's fresh initialisation, and an RGB patch kernel loads into a
// one-channel model summed over its channels (timm's adapt_input_conv).
void load_weights(ViT& model, const std::string& safetensors_path, bool fine_tune = false);
// Builds the model of a checkpoint directory (or a model.safetensors inside one) and loads it.
// `config`, when given, is the model to build instead of the checkpoint's config.json (a timm
// config kept apart, another image size); `path` may then be a bare safetensors file.
ViT load_model(const std::string& path, const std::optional<ModelConfig>& config = std::nullopt);
// After load_weights(model, dir/model.safetensors): restores the optimizer and, with EMA, the
// averaged and raw weights. Returns the trainer's progress JSON.
json load_train_state(const std::string& dir, ViT& model, torch::optim::Optimizer& optimizer, Ema* ema,
                      const torch::Device& device);

}  // namespace vitlab
