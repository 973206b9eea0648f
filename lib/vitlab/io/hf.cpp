#include "vitlab/io/hf.h"

#include <cmath>
#include <set>

#include "vitlab/error.h"

namespace vitlab {
namespace {

const char* const kVit = "ViTForImageClassification";
const char* const kDeit = "DeiTForImageClassification";
const char* const kDeitTeacher = "DeiTForImageClassificationWithTeacher";

// One key of a JSON object with its default, checked for its type: an error names the key.
struct Keys {
  const json& j;
  const std::string& where;
  int integer(const char* key, int fallback) const {
    const auto v = j.find(key);
    if (v == j.end() || v->is_null()) return fallback;
    if (!v->is_number_integer() || v->get<int64_t>() <= 0) fail(where, ": ", key, ": expected a positive integer, got ", dump_json(*v));
    return v->get<int>();
  }
  double number(const char* key, double fallback) const {
    const auto v = j.find(key);
    if (v == j.end() || v->is_null()) return fallback;
    if (!v->is_number()) fail(where, ": ", key, ": expected a number, got ", dump_json(*v));
    return v->get<double>();
  }
  bool flag(const char* key, bool fallback) const {
    const auto v = j.find(key);
    if (v == j.end() || v->is_null()) return fallback;
    if (!v->is_boolean()) fail(where, ": ", key, ": expected true or false, got ", dump_json(*v));
    return v->get<bool>();
  }
  std::string text(const char* key, const std::string& fallback) const {
    const auto v = j.find(key);
    if (v == j.end() || v->is_null()) return fallback;
    if (!v->is_string()) fail(where, ": ", key, ": expected a string, got ", dump_json(*v));
    return v->get<std::string>();
  }
  std::vector<double> numbers(const char* key, std::vector<double> fallback) const {
    const auto v = j.find(key);
    if (v == j.end() || v->is_null()) return fallback;
    if (v->is_number()) return {v->get<double>()};
    if (!v->is_array() || v->empty()) fail(where, ": ", key, ": expected a list of numbers, got ", dump_json(*v));
    std::vector<double> out;
    for (const auto& x : *v) {
      if (!x.is_number()) fail(where, ": ", key, ": expected a list of numbers, got ", dump_json(*v));
      out.push_back(x.get<double>());
    }
    return out;
  }
};

// {height, width}, {shortest_edge} or a bare integer (older processors), as (h, w, shortest).
struct Size {
  int h = 0, w = 0, shortest = 0;
};
Size size_of(const json& pre, const char* key, Size fallback, const std::string& where) {
  const auto v = pre.find(key);
  if (v == pre.end() || v->is_null()) return fallback;
  auto positive = [&](const json& x, const std::string& k) {
    if (!x.is_number_integer() || x.get<int64_t>() <= 0 || x.get<int64_t>() > 1000000)
      fail(where, ": ", k, ": expected a positive integer up to 1e6, got ", dump_json(x));
    return x.get<int>();
  };
  if (v->is_number()) {
    const int s = positive(*v, key);
    return {s, s, 0};
  }
  if (v->is_object() && v->contains("height") && v->contains("width"))
    return {positive((*v)["height"], std::string(key) + ".height"), positive((*v)["width"], std::string(key) + ".width"), 0};
  if (v->is_object() && v->contains("shortest_edge") && v->size() == 1)
    return {0, 0, positive((*v)["shortest_edge"], std::string(key) + ".shortest_edge")};
  fail(where, ": ", key, ": ", dump_json(*v), " is not supported ({height, width} or {shortest_edge})");
}

}  // namespace

bool is_hf_config(const json& j) { return j.is_object() && j.contains("model_type"); }

ModelConfig model_from_hf_config(const json& j, const json& pre, const std::string& where) {
  try {  // a field of the wrong JSON type deep inside: one line naming the file
    const Keys k{j, where};
    const std::string type = k.text("model_type", "");
    if (type != "vit" && type != "deit") fail(where, ": model_type '", type, "' is not a ViT vitlab reads (vit, deit)");
    std::string arch = type == "vit" ? kVit : kDeit;
    if (const auto a = j.find("architectures"); a != j.end() && !a->is_null()) {
      if (!a->is_array() || a->size() != 1 || !(*a)[0].is_string())
        fail(where, ": architectures: expected one class name, got ", dump_json(*a));
      arch = (*a)[0].get<std::string>();
    }
    const std::set<std::string> readable = type == "vit" ? std::set<std::string>{kVit} : std::set<std::string>{kDeit, kDeitTeacher};
    if (!readable.count(arch))
      fail(where, ": architectures: '", arch, "' is not an image classifier vitlab reads (", kVit, ", ", kDeit, ", ",
           kDeitTeacher, ")");
    // transformers' names: the exact GELU, and two of its tanh approximation (the same formula).
    const std::string act = k.text("hidden_act", "gelu");
    if (act != "gelu" && act != "gelu_pytorch_tanh" && act != "gelu_new")
      fail(where, ": hidden_act: '", act, "' is not supported (gelu, gelu_pytorch_tanh, gelu_new)");

    ModelConfig c;
    c.dim = k.integer("hidden_size", 768);
    c.depth = k.integer("num_hidden_layers", 12);
    c.heads = k.integer("num_attention_heads", 12);
    const int hidden = k.integer("intermediate_size", 3072);
    c.mlp_ratio = static_cast<double>(hidden) / c.dim;
    if (c.mlp_hidden() != hidden) fail(where, ": intermediate_size: ", hidden, " is not a width vitlab's MLP can hold");
    c.image_size = k.integer("image_size", 224);
    c.patch_size = k.integer("patch_size", 16);
    c.in_chans = k.integer("num_channels", 3);
    c.qkv_bias = k.flag("qkv_bias", true);
    c.norm_eps = k.number("layer_norm_eps", 1e-12);
    if (act != "gelu") c.mlp = "gelu_tanh";
    c.pool = "cls";
    c.dist_token = type == "deit";  // every DeiT carries it; WithTeacher also its head
    c.dist_head = arch == kDeitTeacher;

    // Classes: id2label {"0": name, ...}, in index order.
    if (const auto l = j.find("id2label"); l != j.end() && !l->is_null()) {
      if (!l->is_object() || l->empty()) fail(where, ": id2label: expected an object {\"0\": name, ...}");
      c.label_names.assign(l->size(), "");
      for (const auto& [id, name] : l->items()) {
        size_t used = 0;
        int i = -1;
        try {
          i = std::stoi(id, &used);
        } catch (const std::exception&) {
        }
        if (used != id.size() || i < 0 || i >= static_cast<int>(l->size()) || !name.is_string())
          fail(where, ": id2label: '", id, "' is not a class index below ", l->size(), " with a name");
        c.label_names[i] = name.get<std::string>();
      }
      c.num_classes = static_cast<int>(c.label_names.size());
    } else {
      c.num_classes = k.integer("num_labels", 2);
    }

    // The processor's normalisation is part of vitlab's model: x / 255 (rescale), then mean / std.
    c.mean = {0.5, 0.5, 0.5}, c.std = {0.5, 0.5, 0.5};  // ViTImageProcessor's defaults
    if (!pre.is_null()) {
      const std::string pwhere = where.substr(0, where.rfind('/') + 1) + "preprocessor_config.json";
      const Keys p{pre, pwhere};
      if (!p.flag("do_rescale", true) || std::abs(p.number("rescale_factor", 1.0 / 255) - 1.0 / 255) > 1e-12)
        fail(pwhere, ": do_rescale / rescale_factor: vitlab scales pixels by 1/255");
      if (p.flag("do_normalize", true)) {
        c.mean = p.numbers("image_mean", c.mean);
        c.std = p.numbers("image_std", c.std);
      } else {
        c.mean = {0.0}, c.std = {1.0};
      }
    }
    if (c.in_chans == 1 && c.mean.size() == 3) c.mean.resize(1), c.std.resize(1);
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

void apply_hf_eval_transform(const json& pre, const ModelConfig& m, const std::string& where, DataConfig& data) {
  try {  // a field of the wrong JSON type deep inside: one line naming the file
    data.crop_pct = 0, data.crop_mode = "center", data.interpolation = "bilinear";
    if (pre.is_null()) return;  // ViTImageProcessor's defaults: the whole image, bilinear
    const Keys p{pre, where};
    const int resample = p.integer("resample", 2);
    if (resample != 2 && resample != 3) fail(where, ": resample: ", resample, " is not supported (2 bilinear, 3 bicubic)");
    data.interpolation = resample == 3 ? "bicubic" : "bilinear";
    if (!p.flag("do_resize", true)) fail(where, ": do_resize false: vitlab resizes every image to the model's size");
    const Size size = size_of(pre, "size", {m.image_size, m.image_size, 0}, where);
    const bool crop = p.flag("do_center_crop", false);
    const Size out = crop ? size_of(pre, "crop_size", {m.image_size, m.image_size, 0}, where) : size;
    if (out.h != m.image_size || out.w != m.image_size)
      fail(where, ": the processor makes ", out.shortest ? "shortest-edge " + std::to_string(out.shortest) :
                                                           std::to_string(out.h) + " x " + std::to_string(out.w),
           " images; the model takes ", m.image_size, " x ", m.image_size);
    if (!crop) return;  // resized straight to the model's size
    if (size.shortest == 0 && size.h != size.w)
      fail(where, ": size: ", size.h, " x ", size.w, " is not square (vitlab's squash resize is)");
    // floor(image_size / crop_pct) must give the resize's side exactly: the side plus a half keeps
    // the quotient clear of the integer below it whatever the rounding of crop_pct.
    const int side = size.shortest ? size.shortest : size.h;
    data.crop_mode = size.shortest ? "center" : "squash";
    data.crop_pct = static_cast<double>(m.image_size) / (side + 0.5);
  } catch (const json::exception& e) {
    fail(where, ": ", json_error_text(e));
  }
}

namespace {

// transformers' name -> vitlab's (timm's) for every tensor but the joined query / key / value,
// whose transformers names go to `qkv`.
std::map<std::string, std::string> key_map(const ModelConfig& c, std::set<std::string>& qkv) {
  const std::string p = c.dist_token ? "deit." : "vit.";
  std::map<std::string, std::string> rename{
      {p + "embeddings.cls_token", "cls_token"},
      {p + "embeddings.position_embeddings", "pos_embed"},
      {p + "embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"},
      {p + "embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"},
      {p + "layernorm.weight", "norm.weight"},
      {p + "layernorm.bias", "norm.bias"}};
  if (c.dist_token) rename[p + "embeddings.distillation_token"] = "dist_token";
  for (const char* s : {"weight", "bias"}) {
    if (c.dist_head) {
      rename[std::string("cls_classifier.") + s] = std::string("head.") + s;
      rename[std::string("distillation_classifier.") + s] = std::string("head_dist.") + s;
    } else {
      rename[std::string("classifier.") + s] = std::string("head.") + s;
    }
  }
  for (int i = 0; i < c.depth; ++i) {
    const std::string h = p + "encoder.layer." + std::to_string(i) + ".", v = "blocks." + std::to_string(i) + ".";
    for (const char* s : {".weight", ".bias"}) {
      rename[h + "attention.output.dense" + s] = v + "attn.proj" + s;
      rename[h + "intermediate.dense" + s] = v + "mlp.fc1" + s;
      rename[h + "output.dense" + s] = v + "mlp.fc2" + s;
      rename[h + "layernorm_before" + s] = v + "norm1" + s;
      rename[h + "layernorm_after" + s] = v + "norm2" + s;
      for (const char* x : {"query", "key", "value"}) qkv.insert(h + "attention.attention." + x + s);
    }
  }
  return rename;
}

}  // namespace

std::map<std::string, torch::Tensor> tensors_from_hf(const std::map<std::string, torch::Tensor>& hf,
                                                     const ModelConfig& c, const std::string& where) {
  const std::string p = c.dist_token ? "deit." : "vit.";
  std::set<std::string> qkv;  // joined below
  const auto rename = key_map(c, qkv);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : hf) {
    if (name.rfind(p + "pooler.", 0) == 0) continue;  // the pooler no classifier reads (transformers skips it too)
    if (const auto r = rename.find(name); r != rename.end()) out[r->second] = t;
    else if (!qkv.count(name)) fail(where, ": tensor '", name, "' is not part of a transformers ", p.substr(0, p.size() - 1),
                                   " classifier of this config");
  }
  // timm's fused projection: (3 inner, d) = [query; key; value], each with its heads contiguous.
  for (int i = 0; i < c.depth; ++i)
    for (const char* s : {"weight", "bias"}) {
      const std::string h = p + "encoder.layer." + std::to_string(i) + ".attention.attention.";
      std::vector<torch::Tensor> parts;
      for (const char* x : {"query", "key", "value"}) {
        const auto it = hf.find(h + x + "." + s);
        if (it != hf.end()) parts.push_back(it->second);
      }
      if (parts.empty() && std::string(s) == "bias" && !c.qkv_bias) continue;
      if (parts.size() != 3) fail(where, ": missing tensor '", h, "query.", s, "' (or its key / value) that the config needs");
      out["blocks." + std::to_string(i) + ".attn.qkv." + s] = torch::cat(parts, 0);
    }
  return out;
}

json hf_config_from_model(const ModelConfig& c) {
  auto refuse = [](const std::string& key, const std::string& why) {
    fail("model.", key, ": ", why, ", so the model cannot be written as a transformers ViT");
  };
  if (c.attention.name != "mha") refuse("attention", "'" + c.attention.name + "' is not transformers' attention (mha)");
  if (c.pos != "learned" && c.pos != "sincos") refuse("pos", "'" + c.pos + "' has no transformers position table");
  if (c.head_dim > 0 && c.head_dim * c.heads != c.dim) refuse("head_dim", "transformers' head width is dim / heads");
  if (c.pool != "cls" || c.fc_norm) refuse("pool", "transformers' classifiers read the class token after the final norm");
  if (c.layer_scale > 0) refuse("layer_scale", "transformers' ViT has no LayerScale");
  if (c.mlp == "swiglu") refuse("mlp", "transformers' ViT MLP is fc, GELU, fc");
  if (c.num_classes == 0) refuse("num_classes", "0 is a backbone, and vitlab writes transformers' image classifiers");
  if (c.reg_tokens > 0 || c.no_embed_class) refuse("reg_tokens", "transformers' ViT has no register tokens");
  if (c.dist_token && !c.dist_head) refuse("dist_head", "vitlab writes DeiT with its teacher head");
  json id2label = json::object(), label2id = json::object();
  for (int i = 0; i < c.num_classes; ++i) {
    const std::string name = c.label_names.empty() ? "LABEL_" + std::to_string(i) : c.label_names[i];
    id2label[std::to_string(i)] = name;
    label2id[name] = i;
  }
  return json{{"architectures", {c.dist_token ? kDeitTeacher : kVit}},
              {"model_type", c.dist_token ? "deit" : "vit"},
              {"hidden_size", c.dim},
              {"num_hidden_layers", c.depth},
              {"num_attention_heads", c.heads},
              {"intermediate_size", c.mlp_hidden()},
              {"hidden_act", c.mlp == "gelu_tanh" ? "gelu_pytorch_tanh" : "gelu"},
              {"hidden_dropout_prob", 0.0},
              {"attention_probs_dropout_prob", 0.0},
              {"initializer_range", 0.02},
              {"layer_norm_eps", c.norm_eps},
              {"image_size", c.image_size},
              {"patch_size", c.patch_size},
              {"num_channels", c.in_chans},
              {"qkv_bias", c.qkv_bias},
              {"encoder_stride", c.patch_size},
              {"id2label", id2label},
              {"label2id", label2id}};
}

json hf_preprocessor_from_model(const ModelConfig& c) {
  // How vitlab evaluates its own runs: the whole image at the model's size, bilinear.
  return json{{"image_processor_type", c.dist_token ? "DeiTImageProcessor" : "ViTImageProcessor"},
              {"do_resize", true},
              {"size", {{"height", c.image_size}, {"width", c.image_size}}},
              {"resample", 2},
              {"do_center_crop", false},
              {"crop_size", {{"height", c.image_size}, {"width", c.image_size}}},
              {"do_rescale", true},
              {"rescale_factor", 1.0 / 255},
              {"do_normalize", true},
              {"image_mean", c.per_channel(c.mean)},
              {"image_std", c.per_channel(c.std)}};
}

std::vector<std::pair<std::string, torch::Tensor>> tensors_to_hf(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const ModelConfig& c) {
  std::set<std::string> qkv;
  std::map<std::string, std::string> to_hf;  // vitlab's name -> transformers'
  for (const auto& [hf, ours] : key_map(c, qkv)) to_hf[ours] = hf;
  const std::string p = c.dist_token ? "deit." : "vit.";
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, t] : tensors) {
    const auto dot = name.rfind('.');
    if (name.find(".attn.qkv.") != std::string::npos) {  // (3 inner, ...) -> query, key, value
      const std::string layer = name.substr(7, name.find('.', 7) - 7);  // blocks.<i>.attn.qkv.<s>
      const auto parts = t.chunk(3, 0);
      const char* x[] = {"query", "key", "value"};
      for (int j = 0; j < 3; ++j)
        out.emplace_back(p + "encoder.layer." + layer + ".attention.attention." + x[j] + name.substr(dot),
                         parts[j].contiguous());
    } else if (const auto it = to_hf.find(name); it != to_hf.end()) {
      out.emplace_back(it->second, t);
    } else {
      fail("model: tensor '", name, "' has no transformers name");
    }
  }
  return out;
}

}  // namespace vitlab
