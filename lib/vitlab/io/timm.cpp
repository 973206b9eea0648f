#include "vitlab/io/timm.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <regex>
#include <set>

#include "vitlab/error.h"

namespace vitlab {

bool is_timm_config(const json& j) { return j.is_object() && j.contains("architecture"); }

ModelConfig model_from_timm_config(const json& j, const std::string& where) {
  try {  // a field of the wrong JSON type deep inside: one line naming the file
    if (!is_timm_config(j) || !j["architecture"].is_string()) fail(where, ": architecture: missing or not a string");
    const std::string arch = j["architecture"].get<std::string>();
    // vit_small_patch16_224, vit_base_patch32_384.augreg_in21k, deit_tiny_distilled_patch16_224,
    // vit_small_patch14_reg4_dinov2, vit_base_patch16_reg4_gap_256: family, size, distillation,
    // patch, registers, global average pooling, image size or DINOv2.
    static const std::regex name(
        R"(^(vit|deit)_(tiny|small|base|large|huge|giant)_(distilled_)?patch(\d+)_(?:reg(\d+)_)?(gap_)?(\d+|dinov2)(\..*)?$)");
    std::smatch m;
    if (!std::regex_match(arch, m, name))
      fail(where, ": architecture '", arch, "' is not a timm ViT vitlab reads (vit_{tiny,small,base,large,huge,giant}_patch{P}_{S}, ",
           "their _reg{N}, _gap and _dinov2 forms, deit_*_patch{P}_{S} and deit_*_distilled_*)");
    ModelConfig c;
    const std::string size = m[2];
    c.dim = size == "tiny" ? 192 : size == "small" ? 384 : size == "base" ? 768 : size == "large" ? 1024
          : size == "huge" ? 1280 : 1408;
    c.depth = size == "large" ? 24 : size == "huge" ? 32 : size == "giant" ? 40 : 12;
    c.heads = size == "tiny" ? 3 : size == "small" ? 6 : size == "base" ? 12 : 16;
    if (size == "giant") c.mlp_ratio = 48.0 / 11;
    // The name's numbers: what std::stoi would take beyond int's range is no ViT's size.
    auto digits = [&](const std::string& d, const char* what) {
      if (d.size() > 6) fail(where, ": architecture '", arch, "': ", what, " ", d, " is out of range");
      return std::stoi(d);
    };
    c.patch_size = digits(m[4], "patch size");
    const bool dinov2 = m[7] == "dinov2";
    c.image_size = dinov2 ? 518 : digits(m[7], "image size");
    c.in_chans = 3;
    c.num_classes = 1000;
    c.norm_eps = 1e-6;
    // timm's ViT default normalisation (Inception statistics); DeiT and DINOv2 use ImageNet's.
    if (m[1] == "deit" || dinov2) c.mean = {0.485, 0.456, 0.406}, c.std = {0.229, 0.224, 0.225};
    else c.mean = {0.5, 0.5, 0.5}, c.std = {0.5, 0.5, 0.5};
    if (m[3].matched) c.dist_token = c.dist_head = true;          // DeiT's distillation token and head
    if (dinov2) c.layer_scale = 1e-5;                             // timm's init_values for DINOv2
    // DINOv2's giant is wider and gated (timm: mlp_layer=SwiGLUPacked, act_layer=nn.SiLU).
    std::optional<std::string> mlp_layer, act_layer;
    if (dinov2 && size == "giant")
      c.dim = 1536, c.heads = 24, c.mlp_ratio = 2.66667 * 2, mlp_layer = "SwiGLUPacked", act_layer = "SiLU";
    if (m[5].matched) c.reg_tokens = digits(m[5], "register tokens"), c.no_embed_class = true;
    std::string pool = m[6].matched ? "avg" : "token";
    std::optional<bool> class_token;
    if (m[6].matched) class_token = false;  // _gap: no class token, the patches averaged
    std::optional<bool> fc_norm;

    auto number = [&](const json& v, const std::string& key) {
      if (!v.is_number()) fail(where, ": ", key, ": not a number");
      return v.get<double>();
    };
    // A size or count: converting a double outside int's range would be undefined behaviour.
    auto integer = [&](const json& v, const std::string& key) {
      const double x = number(v, key);
      if (x != std::floor(x) || x < 0 || x > 1e6) fail(where, ": ", key, ": expected a whole number up to 1e6, got ", dump_json(v));
      return static_cast<int>(x);
    };
    if (const auto pc = j.find("pretrained_cfg"); pc != j.end() && pc->is_object()) {
      if (const auto in = pc->find("input_size"); in != pc->end()) {
        if (!in->is_array() || in->size() != 3 || (*in)[1] != (*in)[2])
          fail(where, ": pretrained_cfg.input_size: expected [C, S, S]");
        c.in_chans = integer((*in)[0], "pretrained_cfg.input_size"), c.image_size = integer((*in)[1], "pretrained_cfg.input_size");
      }
      if (pc->contains("mean")) c.mean = (*pc)["mean"].get<std::vector<double>>();
      if (pc->contains("std")) c.std = (*pc)["std"].get<std::vector<double>>();
      if (pc->contains("num_classes")) c.num_classes = integer((*pc)["num_classes"], "pretrained_cfg.num_classes");
    }
    if (j.contains("num_classes")) c.num_classes = integer(j["num_classes"], "num_classes");
    if (j.contains("global_pool")) pool = j["global_pool"].get<std::string>();
    // The class names timm writes beside a hub checkpoint (label_names, one per class).
    if (const auto l = j.find("label_names"); l != j.end() && !l->is_null()) {
      if (!l->is_array()) fail(where, ": label_names: expected an array of strings");
      for (const auto& n : *l) {
        if (!n.is_string()) fail(where, ": label_names: expected an array of strings");
        c.label_names.push_back(n.get<std::string>());
      }
    }
    if (const auto a = j.find("model_args"); a != j.end()) {
      if (!a->is_object()) fail(where, ": model_args: not an object");
      for (const auto& [key, v] : a->items()) {
        const std::string k = "model_args." + key;
        if (key == "embed_dim") c.dim = integer(v, k);
        else if (key == "depth") c.depth = integer(v, k);
        else if (key == "num_heads") c.heads = integer(v, k);
        else if (key == "patch_size") c.patch_size = integer(v, k);
        else if (key == "img_size") c.image_size = integer(v, k);
        else if (key == "in_chans") c.in_chans = integer(v, k);
        else if (key == "num_classes") c.num_classes = integer(v, k);
        else if (key == "mlp_ratio") c.mlp_ratio = number(v, k);
        else if (key == "qkv_bias") c.qkv_bias = v.get<bool>();
        else if (key == "class_token") class_token = v.get<bool>();
        else if (key == "fc_norm") {
          if (!v.is_null()) fc_norm = v.get<bool>();  // null: timm's default for the pooling
        }
        else if (key == "init_values") c.layer_scale = v.is_null() ? 0.0 : number(v, k);
        else if (key == "global_pool") pool = v.get<std::string>();
        else if (key == "reg_tokens") c.reg_tokens = integer(v, k);
        else if (key == "no_embed_class") c.no_embed_class = v.get<bool>();
        // dynamic_img_size resamples the position table to each input's grid; vitlab resamples it
        // once, when a checkpoint is loaded at another size, with the same function.
        else if (key == "dynamic_img_size") continue;
        // timm takes these as classes (mlp_layer=SwiGLUPacked, act_layer=nn.SiLU); a config
        // names them by a string such as "timm.layers.SwiGLUPacked" or "torch.nn.SiLU".
        else if (key == "mlp_layer" || key == "act_layer") {
          if (!v.is_string()) fail(where, ": ", k, ": expected a class name, got ", dump_json(v));
          (key == "mlp_layer" ? mlp_layer : act_layer) = v.get<std::string>();
        }
        else if ((key == "pre_norm" && !v.get<bool>()) || (key == "qk_norm" && !v.get<bool>()))
          continue;  // timm's defaults
        else fail(where, ": ", k, ": ", dump_json(v), " is not supported by vitlab's ViT");
      }
    }
    // The MLP: timm's Mlp with GELU (its defaults) or with GELU's tanh approximation ('gelu_tanh',
    // class GELUTanh), or SwiGLUPacked gated by SiLU. A class is known by its last name, in any
    // case ("timm.layers.SwiGLUPacked", "torch.nn.SiLU", "silu").
    auto known = [](const std::optional<std::string>& name, const std::string& fallback) {
      std::string n = name ? name->substr(name->rfind('.') + 1) : fallback;
      std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::tolower(ch); });
      return n;
    };
    const std::string mlp = known(mlp_layer, "mlp"), act = known(act_layer, "gelu");
    if (mlp == "swiglupacked") {
      if (act != "silu" && act != "swish")
        fail(where, ": model_args.act_layer: SwiGLUPacked gated by ", act_layer ? "'" + *act_layer + "'" : "GELU (timm's default)",
             " is not supported (SiLU)");
      c.mlp = "swiglu";
    } else if (mlp != "mlp") {
      fail(where, ": model_args.mlp_layer: '", *mlp_layer, "' is not supported (Mlp, SwiGLUPacked)");
    } else if (act == "gelu_tanh" || act == "gelutanh") {
      c.mlp = "gelu_tanh";
    } else if (act != "gelu") {
      fail(where, ": model_args.act_layer: '", *act_layer, "' is not supported with timm's Mlp (GELU, gelu_tanh)");
    }
    if (pool == "token") {
      c.pool = "cls";
      if (class_token == false) fail(where, ": global_pool 'token' needs the class token");
    } else if (pool == "avg" || pool == "avgmax") {
      c.pool = pool == "avg" ? "mean" : "avgmax";
      c.class_token = class_token.value_or(true);  // timm keeps the class token unless told otherwise
    } else {
      fail(where, ": global_pool '", pool, "' is not supported (token, avg, avgmax)");
    }
    // timm normalises the pooled token (fc_norm) instead of every token by default when averaging.
    c.fc_norm = fc_norm.value_or(pool != "token");
    try {
      c.validate();
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
    return c;
  } catch (const json::exception& e) {
    fail(where, ": ", json_error_text(e));
  }
}

void apply_timm_eval_transform(const json& j, const std::string& where, DataConfig& data) {
  try {  // a field of the wrong JSON type deep inside: one line naming the file
    data.crop_pct = 0.9, data.interpolation = "bicubic";  // timm's ViT _cfg
    const auto pc = j.find("pretrained_cfg");
    if (pc == j.end() || !pc->is_object()) return;
    if (const auto v = pc->find("crop_pct"); v != pc->end() && !v->is_null()) {
      if (!v->is_number() || v->get<double>() <= 0 || v->get<double>() > 1)
        fail(where, ": pretrained_cfg.crop_pct: expected a number in (0, 1], got ", dump_json(*v));
      data.crop_pct = v->get<double>();
    }
    if (const auto v = pc->find("interpolation"); v != pc->end() && !v->is_null()) {
      if (*v != "bicubic" && *v != "bilinear")
        fail(where, ": pretrained_cfg.interpolation: ", dump_json(*v), " is not supported (bicubic, bilinear)");
      data.interpolation = v->get<std::string>();
    }
    if (const auto v = pc->find("crop_mode"); v != pc->end() && !v->is_null()) {
      if (*v != "center" && *v != "squash")
        fail(where, ": pretrained_cfg.crop_mode: ", dump_json(*v), " is not supported (center, squash)");
      data.crop_mode = v->get<std::string>();
    }
  } catch (const json::exception& e) {
    fail(where, ": ", json_error_text(e));
  }
}

json timm_config_from_model(const ModelConfig& c) {
  auto refuse = [](const std::string& key, const std::string& why) {
    fail("model.", key, ": ", why, ", so the model cannot be written as a timm ViT");
  };
  if (c.attention.name != "mha") refuse("attention", "'" + c.attention.name + "' is not timm's attention (mha)");
  if (c.pos != "learned" && c.pos != "sincos") refuse("pos", "'" + c.pos + "' has no timm position table");
  if (c.head_dim > 0 && c.head_dim * c.heads != c.dim) refuse("head_dim", "timm's head width is dim / heads");
  if (c.norm_eps != 1e-6) refuse("norm_eps", "timm's ViT LayerNorm uses eps 1e-6");
  if (c.dist_token) refuse("dist_token", "timm's distilled DeiT is another architecture");
  // A registered timm name of the same size where there is one; model_args say everything anyway.
  const std::string size = c.dim == 192 ? "tiny" : c.dim == 384 ? "small" : c.dim == 1024 ? "large" : "base";
  static const std::set<std::string> registered{"16_224", "16_384", "32_224", "32_384"};
  const std::string ps = std::to_string(c.patch_size) + "_" + std::to_string(c.image_size);
  const std::string arch = "vit_" + size + "_patch" + (registered.count(ps) ? ps : std::string("16_224"));
  const std::string pool = c.pool == "cls" ? "token" : c.pool == "mean" ? "avg" : "avgmax";
  json model_args{{"img_size", c.image_size}, {"patch_size", c.patch_size},  {"in_chans", c.in_chans},
                  {"num_classes", c.num_classes}, {"embed_dim", c.dim},     {"depth", c.depth},
                  {"num_heads", c.heads},     {"mlp_ratio", c.mlp_ratio},   {"qkv_bias", c.qkv_bias},
                  {"class_token", c.has_class_token()}, {"global_pool", pool}, {"fc_norm", c.fc_norm},
                  {"init_values", c.layer_scale > 0 ? json(c.layer_scale) : json(nullptr)},
                  {"reg_tokens", c.reg_tokens},   {"no_embed_class", c.no_embed_class}};
  if (c.mlp == "swiglu") model_args["mlp_layer"] = "SwiGLUPacked", model_args["act_layer"] = "silu";
  if (c.mlp == "gelu_tanh") model_args["act_layer"] = "gelu_tanh";
  json pretrained{{"input_size", {c.in_chans, c.image_size, c.image_size}},
                  {"fixed_input_size", true},
                  {"interpolation", "bilinear"},
                  {"crop_pct", 1.0},
                  {"crop_mode", "center"},
                  {"mean", c.per_channel(c.mean)},
                  {"std", c.per_channel(c.std)},
                  {"num_classes", c.num_classes},
                  {"first_conv", "patch_embed.proj"},
                  {"classifier", "head"}};
  json j{{"architecture", arch}, {"num_classes", c.num_classes}, {"num_features", c.dim},
          {"global_pool", pool}, {"model_args", model_args}, {"pretrained_cfg", pretrained}};
  if (!c.label_names.empty()) j["label_names"] = c.label_names;
  return j;
}

}  // namespace vitlab
