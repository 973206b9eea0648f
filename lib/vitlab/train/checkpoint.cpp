#include "vitlab/train/checkpoint.h"

#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/hf.h"
#include "vitlab/io/timm.h"

namespace vitlab {

NamedTensors model_tensors(ViT& model) {
  NamedTensors out;
  for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void save_checkpoint(const std::string& dir, ViT& model, const torch::optim::Optimizer* optimizer,
                     const Ema* ema, const json& progress) {
  const std::string tmp = temp_directory_for(dir, "checkpoint");
  try {  // a failed write (a full disk) leaves the previous checkpoint and no partial copy
    // model.safetensors holds the weights that are evaluated: the EMA when there is one (the raw
    // training weights then travel in train_state.pt).
    NamedTensors published = model_tensors(model);
    if (ema) {
      const auto& shadow = const_cast<Ema*>(ema)->tensors();
      for (size_t i = 0; i < shadow.size(); ++i) published[i].second = shadow[i];  // parameters come first
    }
    save_safetensors(join_path(tmp, "model.safetensors"), published,
                     {{"format", "pt"}, {"producer", "vitlab"}});
    atomic_write(join_path(tmp, "config.json"), dump_json(to_json(model->cfg), 2) + "\n");
    if (optimizer) {
      torch::serialize::OutputArchive archive, opt_archive;
      optimizer->save(opt_archive);
      archive.write("optimizer", opt_archive);
      if (ema) {
        auto params = model->parameters();
        for (size_t i = 0; i < params.size(); ++i) archive.write("raw." + std::to_string(i), params[i], true);
      }
      archive.write("progress", c10::IValue(dump_json(progress)));
      // Through memory and atomic_write: a full disk is then one clear error naming the file.
      std::ostringstream bytes;
      archive.save_to(bytes);
      atomic_write(join_path(tmp, "train_state.pt"), bytes.str());
    }
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  replace_directory(tmp, dir);
}

void save_timm_checkpoint(const std::string& dir, ViT& model) {
  const json config = timm_config_from_model(model->cfg);  // refuses what timm's ViT cannot hold
  const std::string tmp = temp_directory_for(dir, "--out");
  // vitlab's MHA ViT already uses timm's names and layouts (qkv fused, patch projection as a
  // convolution kernel), so the tensors go out as they are.
  save_safetensors(join_path(tmp, "model.safetensors"), model_tensors(model), {{"format", "pt"}, {"producer", "vitlab"}});
  atomic_write(join_path(tmp, "config.json"), dump_json(config, 2) + "\n");
  replace_directory(tmp, dir);
}

void save_hf_checkpoint(const std::string& dir, ViT& model) {
  const json config = hf_config_from_model(model->cfg);  // refuses what transformers' ViT cannot hold
  const std::string tmp = temp_directory_for(dir, "--out");
  save_safetensors(join_path(tmp, "model.safetensors"), tensors_to_hf(model_tensors(model), model->cfg),
                   {{"format", "pt"}, {"producer", "vitlab"}});
  atomic_write(join_path(tmp, "config.json"), dump_json(config, 2) + "\n");
  atomic_write(join_path(tmp, "preprocessor_config.json"), dump_json(hf_preprocessor_from_model(model->cfg), 2) + "\n");
  replace_directory(tmp, dir);
}

std::string find_checkpoint(const std::string& dir) {
  for (const std::string& d : {dir, dir + ".old"})
    if (path_exists(join_path(d, "model.safetensors")) && path_exists(join_path(d, "config.json"))) return d;
  return "";
}

json hf_preprocessor(const std::string& dir) {
  const std::string path = join_path(dir, "preprocessor_config.json");
  return path_exists(path) ? read_json_file(path) : json();
}

ModelConfig checkpoint_config_from_json(const json& j, const std::string& path) {
  if (is_timm_config(j)) return model_from_timm_config(j, path);  // a timm checkpoint from the hub
  if (is_hf_config(j)) return model_from_hf_config(j, hf_preprocessor(parent_path(path)), path);  // transformers
  try {
    return model_from_json(j, "model");
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

ModelConfig read_checkpoint_config(const std::string& dir) {
  const std::string path = join_path(dir, "config.json");
  if (!path_exists(path)) fail(dir, ": not a vitlab checkpoint (no config.json)");
  return checkpoint_config_from_json(read_json_file(path), path);
}

void load_weights(ViT& model, const std::string& path, bool fine_tune) {
  auto file = load_safetensors(path);
  std::map<std::string, torch::Tensor> by_name(file.begin(), file.end());
  // Beside a transformers config.json the names are transformers' (io/hf.h).
  const std::string beside = join_path(parent_path(path), "config.json");
  if (path_exists(beside) && is_hf_config(read_json_file(beside))) by_name = tensors_from_hf(by_name, model->cfg, path);
  torch::NoGradGuard no_grad;
  auto is_head = [](const std::string& name) { return name.rfind("head.", 0) == 0 || name.rfind("head_dist.", 0) == 0; };
  for (auto& [name, t] : model_tensors(model)) {
    auto it = by_name.find(name);
    if (it == by_name.end() && fine_tune && is_head(name)) continue;  // a backbone's new classifier (num_classes 0)
    if (it == by_name.end()) fail(path, ": missing tensor '", name, "' that the model config needs");
    torch::Tensor value = it->second;
    // A model built for another image size (fine-tuning or evaluating at a new resolution):
    // a learned position table is resampled as timm does; a sin-cos one is the model's own.
    if (name == "pos_embed" && value.sizes() != t.sizes() && value.dim() == 3 && value.size(2) == t.size(2)) {
      const int64_t prefix = model->cfg.pos_tokens() - model->cfg.num_patches();  // rows before the grid
      if (model->cfg.pos == "sincos") value = t;
      else if (square_grid_side(value.size(1) - prefix) > 0) value = resample_pos_embed(value, prefix, model->cfg.grid());
    }
    if (fine_tune && is_head(name) && value.sizes() != t.sizes()) value = t;
    // A gray image x through the summed kernel is the RGB kernel on (x, x, x).
    if (fine_tune && name == "patch_embed.proj.weight" && value.dim() == 4 && value.size(1) == 3 && t.size(1) == 1)
      value = value.to(torch::kFloat).sum(1, /*keepdim=*/true);  // (d, 3, p, p) -> (d, 1, p, p)
    // fc2 reading half of fc1's outputs is a gated MLP, which a timm config.json often leaves
    // out (its users pass mlp_layer=SwiGLUPacked, act_layer=nn.SiLU to timm.create_model).
    const bool gated = name.size() > 14 && name.compare(name.size() - 14, 14, "mlp.fc2.weight") == 0 &&
                       model->cfg.mlp != "swiglu" && value.dim() == 2 && t.dim() == 2 && 2 * value.size(1) == t.size(1);
    if (value.sizes() != t.sizes())
      fail(path, ": tensor '", name, "' has shape ", value.sizes(), " but the model config needs ", t.sizes(),
           gated ? ": a gated MLP (timm's SwiGLUPacked), which the config does not name; add \"mlp_layer\": "
                   "\"SwiGLUPacked\", \"act_layer\": \"SiLU\" to its model_args (model.mlp=swiglu in vitlab's)" : "");
    t.copy_(value);
    by_name.erase(it);
  }
  if (!by_name.empty()) fail(path, ": tensor '", by_name.begin()->first, "' is not part of the model config");
}

ViT load_model(const std::string& path, const std::optional<ModelConfig>& config) {
  std::string weights;
  if (config && is_regular_file(path)) {
    weights = path;  // a bare safetensors file with its config given apart (a timm config)
  } else {
    const std::string dir = is_regular_file(path) ? parent_path(path) : path;
    if (!is_directory(dir)) fail(path, ": no such checkpoint directory");
    const std::string found = find_checkpoint(dir);
    if (found.empty()) fail(path, ": not a vitlab checkpoint (needs model.safetensors and config.json)");
    weights = join_path(found, "model.safetensors");
  }
  ViT model(config ? *config : read_checkpoint_config(parent_path(weights)));
  load_weights(model, weights);
  return model;
}

json load_train_state(const std::string& dir, ViT& model, torch::optim::Optimizer& optimizer, Ema* ema,
                      const torch::Device& device) {
  const std::string path = join_path(dir, "train_state.pt");
  if (!path_exists(path)) fail(dir, ": checkpoint has no train_state.pt (not resumable)");
  torch::serialize::InputArchive archive, opt_archive;
  try {
    archive.load_from(path, device);
    archive.read("optimizer", opt_archive);
    optimizer.load(opt_archive);
    if (ema) {  // the model holds the published (EMA) weights; swap the raw ones back in
      torch::NoGradGuard no_grad;
      auto params = model->parameters();
      auto& shadow = ema->tensors();
      for (size_t i = 0; i < params.size(); ++i) {
        torch::Tensor raw;
        archive.read("raw." + std::to_string(i), raw, true);
        shadow[i].copy_(params[i]);
        params[i].copy_(raw);
      }
    }
    c10::IValue progress;
    archive.read("progress", progress);
    return json::parse(progress.toStringRef());
  } catch (const c10::Error& e) {
    fail(path, ": cannot restore the training state (", e.what_without_backtrace(), ")");
  } catch (const json::exception& e) {
    fail(path, ": cannot restore the training state (its progress record: ", json_error_text(e), ")");
  }
}

}  // namespace vitlab
