#include "vitlab/config.h"

#include <climits>
#include <cmath>
#include <fstream>
#include <set>

#include "vitlab/data/auto_augment.h"
#include "vitlab/error.h"
#include "vitlab/text.h"

namespace vitlab {
namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

// Reads the keys of one JSON object into fields; every key must be read exactly once or
// finish() names it as unknown.
class Fields {
 public:
  Fields(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail(path_, ": expected an object, got ", type_name(j_));
  }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  bool has(const std::string& key) const { return j_.contains(key); }

  void get(const std::string& key, int& out) {
    if (const json* v = take(key)) {
      const bool fits = v->is_number_unsigned() ? v->get<uint64_t>() <= uint64_t(INT_MAX)
                        : v->is_number_integer() && v->get<int64_t>() >= INT_MIN && v->get<int64_t>() <= INT_MAX;
      if (!fits) wrong(key, *v, "an integer");  // 2^32 + 1 must not become 1
      out = v->get<int>();
    }
  }
  void get(const std::string& key, double& out) {
    if (const json* v = take(key)) {
      if (!v->is_number()) wrong(key, *v, "a number");
      out = v->get<double>();
    }
  }
  void get(const std::string& key, bool& out) {
    if (const json* v = take(key)) {
      if (!v->is_boolean()) wrong(key, *v, "a boolean");
      out = v->get<bool>();
    }
  }
  void get(const std::string& key, std::string& out) {
    if (const json* v = take(key)) {
      if (!v->is_string()) wrong(key, *v, "a string");
      out = v->get<std::string>();
    }
  }
  void get(const std::string& key, std::vector<double>& out) {
    if (const json* v = take(key)) {
      if (v->is_number()) {
        out = {v->get<double>()};
        return;
      }
      if (!v->is_array() || v->empty()) wrong(key, *v, "a number or a non-empty array of numbers");
      out.clear();
      for (const auto& e : *v) {
        if (!e.is_number()) wrong(key, *v, "an array of numbers");
        out.push_back(e.get<double>());
      }
    }
  }
  void get(const std::string& key, std::vector<std::string>& out) {
    if (const json* v = take(key)) {
      if (!v->is_array()) wrong(key, *v, "an array of strings");
      out.clear();
      for (const auto& e : *v) {
        if (!e.is_string()) wrong(key, *v, "an array of strings");
        out.push_back(e.get<std::string>());
      }
    }
  }
  const json* object(const std::string& key) { return take(key); }
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail(key_path(it.key()), ": unknown key");
  }

 private:
  const json* take(const std::string& key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  [[noreturn]] void wrong(const std::string& key, const json& v, const char* expected) const {
    fail(key_path(key), ": expected ", expected, ", got ", type_name(v), " ", dump_json(v));
  }
  const json& j_;
  std::string path_;
  std::set<std::string> seen_;
};

void check(bool ok, const std::string& key, const std::string& why) {
  if (!ok) fail(key, ": ", why);
}

bool one_of(const std::string& v, std::initializer_list<const char*> options) {
  for (const char* o : options)
    if (v == o) return true;
  return false;
}

}  // namespace

ModelConfig model_preset(const std::string& name) {
  ModelConfig c;
  c.preset = name;
  if (name == "vit-micro") {
    c.dim = 128, c.depth = 6, c.heads = 4;
  } else if (name == "vit-tiny") {
    c.dim = 192, c.depth = 12, c.heads = 3;
  } else if (name == "vit-small") {
    c.dim = 384, c.depth = 12, c.heads = 6;
  } else if (name == "vit-base") {
    c.dim = 768, c.depth = 12, c.heads = 12;
  } else {
    fail("model.preset: unknown preset '", name, "' (known: vit-micro, vit-tiny, vit-small, vit-base)");
  }
  return c;
}

void ModelConfig::validate() const {
  check(image_size > 0, "model.image_size", "must be positive");
  check(patch_size > 0, "model.patch_size", "must be positive");
  check(image_size % patch_size == 0, "model.patch_size",
        std::to_string(patch_size) + " does not divide model.image_size=" + std::to_string(image_size));
  check(in_chans > 0, "model.in_chans", "must be positive");
  check(num_classes > 1 || num_classes == 0, "model.num_classes",
        "must be at least 2, or 0 for a backbone without a classifier (timm's num_classes=0)");
  check(dim > 0, "model.dim", "must be positive");
  check(depth > 0, "model.depth", "must be positive");
  check(heads > 0, "model.heads", "must be positive");
  check(head_dim >= 0, "model.head_dim", "must be positive (or 0 for dim / heads)");
  check(head_dim > 0 || dim % heads == 0, "model.heads",
        std::to_string(heads) + " does not divide model.dim=" + std::to_string(dim) + " (or set model.head_dim)");
  check(mlp_ratio > 0, "model.mlp_ratio", "must be positive");
  check(one_of(mlp, {"gelu", "gelu_tanh", "swiglu"}), "model.mlp", "'" + mlp + "' is not one of gelu, gelu_tanh, swiglu");
  check(mlp != "swiglu" || mlp_hidden() % 2 == 0, "model.mlp_ratio",
        "swiglu needs an even hidden width, model.dim * model.mlp_ratio = " + std::to_string(mlp_hidden()));
  check(one_of(pool, {"cls", "mean", "avgmax"}), "model.pool", "'" + pool + "' is not one of cls, mean, avgmax");
  check(one_of(pos, {"learned", "sincos", "rope", "none"}), "model.pos",
        "'" + pos + "' is not one of learned, sincos, rope, none");
  check(rope_theta > 1, "model.rope_theta", "must be greater than 1");
  check(pos != "sincos" || dim % 4 == 0, "model.pos", "sincos needs model.dim divisible by 4");
  check(drop_rate >= 0 && drop_rate < 1, "model.drop_rate", "must be in [0, 1)");
  check(drop_path >= 0 && drop_path < 1, "model.drop_path", "must be in [0, 1)");
  check(norm_eps > 0, "model.norm_eps", "must be positive");
  check(layer_scale >= 0, "model.layer_scale", "must be 0 (off) or positive");
  check(pool != "cls" || has_class_token(), "model.class_token", "pool 'cls' needs the class token");
  check(!dist_token || has_class_token(), "model.dist_token", "needs the class token (it follows it)");
  check(!dist_head || (dist_token && pool == "cls" && !fc_norm), "model.dist_head",
        "needs model.dist_token, pool 'cls' and no model.fc_norm");
  check(reg_tokens >= 0, "model.reg_tokens", "must be >= 0");
  check(!no_embed_class || pos == "learned" || pos == "sincos", "model.no_embed_class",
        "needs a position table (model.pos learned or sincos)");
  for (const auto* v : {&mean, &std})
    check(v->size() == 1 || static_cast<int>(v->size()) == in_chans, v == &mean ? "model.mean" : "model.std",
          "needs 1 or model.in_chans=" + std::to_string(in_chans) + " values");
  for (double s : std) check(s > 0, "model.std", "values must be positive");
  check(label_names.empty() || static_cast<int>(label_names.size()) == num_classes, "model.label_names",
        "has " + std::to_string(label_names.size()) + " names but model.num_classes=" + std::to_string(num_classes));
  std::set<std::string> names(label_names.begin(), label_names.end());
  check(names.size() == label_names.size(), "model.label_names", "names must be distinct");
}

void DataConfig::validate() const {
  check(!spec.empty(), "data.spec", "must not be empty");
  check(val_size >= 0 && (val_size < 1 || val_size == std::floor(val_size)), "data.val_size",
        "must be a count of images (>= 1), a fraction in (0, 1), or 0 (none)");
  check(image_size >= 0, "data.image_size", "must be >= 0");
  check(crop_pct >= 0 && crop_pct <= 1, "data.crop_pct", "must be in (0, 1], or 0 (no crop)");
  check(crop_pct == 0 || image_size > 0 || spec.rfind("folder:", 0) == 0, "data.crop_pct",
        "needs data.image_size (an image folder takes the model's)");
  check(one_of(crop_mode, {"center", "squash"}), "data.crop_mode", "'" + crop_mode + "' is not one of center, squash");
  check(interpolation == "bilinear" || interpolation == "bicubic", "data.interpolation",
        "must be \"bilinear\" or \"bicubic\", got \"" + interpolation + "\"");
  check(channels == 0 || channels == 1 || channels == 3, "data.channels", "must be 0, 1 or 3");
  check(workers >= 0, "data.workers", "must be >= 0");
  check(one_of(decode, {"auto", "cpu"}), "data.decode", "'" + decode + "' is not one of auto, cpu");
  check(hw_decoder_load >= 0 && hw_decoder_load <= 1, "data.hw_decoder_load", "must be in [0, 1]");
  check(synthetic.train > 0 && synthetic.test > 0, "data.synthetic", "train and test must be positive");
  check(synthetic.classes >= 2, "data.synthetic.classes", "must be at least 2");
  check(synthetic.image_size >= 4, "data.synthetic.image_size", "must be at least 4");
  check(synthetic.channels >= 1, "data.synthetic.channels", "must be positive");
}

void TrainConfig::validate() const {
  check(epochs > 0, "train.epochs", "must be positive");
  check(batch_size > 0, "train.batch_size", "must be positive");
  check(eval_batch_size > 0, "train.eval_batch_size", "must be positive");
  check(lr > 0, "train.lr", "must be positive");
  check(min_lr >= 0 && min_lr <= lr, "train.min_lr", "must be in [0, train.lr]");
  check(warmup_epochs >= 0, "train.warmup_epochs", "must be >= 0");
  check(weight_decay >= 0, "train.weight_decay", "must be >= 0");
  check(beta1 >= 0 && beta1 < 1, "train.beta1", "must be in [0, 1)");
  check(beta2 >= 0 && beta2 < 1, "train.beta2", "must be in [0, 1)");
  check(eps > 0, "train.eps", "must be positive");
  check(grad_clip >= 0, "train.grad_clip", "must be >= 0");
  check(label_smoothing >= 0 && label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)");
  check(ema_decay >= 0 && ema_decay < 1, "train.ema_decay", "must be in [0, 1)");
  check(threads >= 0, "train.threads", "must be >= 0");
  check(device == "auto" || device == "cpu" || device.rfind("cuda", 0) == 0, "train.device",
        "'" + device + "' is not one of auto, cpu, cuda, cuda:N");
  check(precision == "auto" || precision == "fp32" || precision == "bf16", "train.precision",
        "'" + precision + "' is not one of auto, fp32, bf16");
  check(augment.crop_padding >= 0, "train.augment.crop_padding", "must be >= 0");
  check(augment.mixup_alpha >= 0, "train.augment.mixup_alpha", "must be >= 0");
  check(augment.cutmix_alpha >= 0, "train.augment.cutmix_alpha", "must be >= 0");
  check(augment.mix_prob >= 0 && augment.mix_prob <= 1, "train.augment.mix_prob", "must be in [0, 1]");
  const auto& a = augment;
  check(a.scale.size() == 2 && a.scale[0] > 0 && a.scale[0] <= a.scale[1] && a.scale[1] <= 1, "train.augment.scale",
        "must be [min, max] with 0 < min <= max <= 1");
  check(a.ratio.size() == 2 && a.ratio[0] > 0 && a.ratio[0] <= a.ratio[1], "train.augment.ratio",
        "must be [min, max] with 0 < min <= max");
  check(one_of(a.interpolation, {"bilinear", "bicubic"}), "train.augment.interpolation",
        "must be \"bilinear\" or \"bicubic\", got \"" + a.interpolation + "\"");
  check(a.re_prob >= 0 && a.re_prob <= 1, "train.augment.re_prob", "must be in [0, 1]");
  check(one_of(a.re_mode, {"const", "rand", "pixel"}), "train.augment.re_mode",
        "'" + a.re_mode + "' is not one of const, rand, pixel");
  check(a.re_count >= 1, "train.augment.re_count", "must be at least 1");
  augment_policy(a, ModelConfig{});  // parses auto_augment and color_jitter (errors name them)
}

void RunConfig::validate() const {
  model.validate();
  data.validate();
  train.validate();
}

json to_json(const ModelConfig& c) {
  json attention = c.attention.options;
  attention["name"] = c.attention.name;
  if (!c.attention.plugin.empty()) attention["plugin"] = c.attention.plugin;
  json j{{"preset", c.preset},         {"image_size", c.image_size}, {"patch_size", c.patch_size},
              {"in_chans", c.in_chans},     {"num_classes", c.num_classes}, {"dim", c.dim},
              {"depth", c.depth},           {"heads", c.heads},           {"head_dim", c.head_dim},
              {"mlp_ratio", c.mlp_ratio},   {"qkv_bias", c.qkv_bias},     {"pool", c.pool},
              {"pos", c.pos},               {"rope_theta", c.rope_theta}, {"drop_rate", c.drop_rate},   {"drop_path", c.drop_path},
              {"norm_eps", c.norm_eps},     {"mean", c.mean},             {"std", c.std},
              {"attention", attention}};
  // Written only when on, so the configs of runs recorded before these options stay equal.
  if (c.mlp != "gelu") j["mlp"] = c.mlp;
  if (c.fc_norm) j["fc_norm"] = true;
  if (c.layer_scale > 0) j["layer_scale"] = c.layer_scale;
  if (c.class_token) j["class_token"] = *c.class_token;
  if (c.dist_token) j["dist_token"] = true;
  if (c.dist_head) j["dist_head"] = true;
  if (c.reg_tokens > 0) j["reg_tokens"] = c.reg_tokens;
  if (c.no_embed_class) j["no_embed_class"] = true;
  if (!c.label_names.empty()) j["label_names"] = c.label_names;
  return j;
}

json to_json(const DataConfig& c) {
  const auto& s = c.synthetic;
  // A count is written as an integer, as the records of earlier runs have it.
  const json val_size = c.val_size >= 1 ? json(static_cast<int64_t>(c.val_size)) : json(c.val_size);
  json j{{"spec", c.spec},
         {"val_size", val_size},
         {"image_size", c.image_size},
         {"channels", c.channels},
         {"workers", c.workers},
         {"synthetic", {{"train", s.train}, {"test", s.test}, {"classes", s.classes},
                        {"image_size", s.image_size}, {"channels", s.channels}, {"seed", s.seed}}}};
  // Written only when set, so the records of earlier runs still match on --resume.
  if (c.crop_pct > 0) j["crop_pct"] = c.crop_pct;
  if (c.crop_mode != "center") j["crop_mode"] = c.crop_mode;
  if (c.interpolation != "bilinear") j["interpolation"] = c.interpolation;
  if (c.val_seed != 0) j["val_seed"] = c.val_seed;
  if (c.skip_bad_images) j["skip_bad_images"] = true;
  if (c.decode != "auto") j["decode"] = c.decode;
  if (c.hw_decoder_load != 1.0) j["hw_decoder_load"] = c.hw_decoder_load;
  if (!c.reduced_decode) j["reduced_decode"] = false;
  return j;
}

void erase_execution_keys(json& train) {
  for (const char* k : {"threads", "device", "cuda_graph"}) train.erase(k);
}

json to_json(const TrainConfig& c) {
  const auto& a = c.augment;
  json j{{"epochs", c.epochs},
         {"batch_size", c.batch_size},
         {"eval_batch_size", c.eval_batch_size},
         {"lr", c.lr},
         {"min_lr", c.min_lr},
         {"warmup_epochs", c.warmup_epochs},
         {"weight_decay", c.weight_decay},
         {"beta1", c.beta1},
         {"beta2", c.beta2},
         {"eps", c.eps},
         {"grad_clip", c.grad_clip},
         {"label_smoothing", c.label_smoothing},
         {"ema_decay", c.ema_decay},
         {"seed", c.seed},
         {"threads", c.threads},
         {"device", c.device},
         {"precision", c.precision},
         {"tf32", c.tf32},
         {"augment", {{"crop_padding", a.crop_padding}, {"flip", a.flip}, {"mixup_alpha", a.mixup_alpha},
                      {"cutmix_alpha", a.cutmix_alpha}, {"mix_prob", a.mix_prob}}}};
  // Only when set: earlier runs' configs stay as they were.
  if (c.cuda_graph) j["cuda_graph"] = true;
  json& aj = j["augment"];
  if (a.rrc) aj["rrc"] = true;
  if (a.rrc || a.scale != AugmentConfig{}.scale) aj["scale"] = a.scale;
  if (a.rrc || a.ratio != AugmentConfig{}.ratio) aj["ratio"] = a.ratio;
  if (a.rrc || a.interpolation != "bilinear") aj["interpolation"] = a.interpolation;
  if (a.re_prob > 0) aj["re_prob"] = a.re_prob, aj["re_mode"] = a.re_mode, aj["re_count"] = a.re_count;
  if (!a.auto_augment.empty()) aj["auto_augment"] = a.auto_augment;
  if (!a.color_jitter.empty()) aj["color_jitter"] = a.color_jitter;
  return j;
}

json to_json(const RunConfig& c) {
  return json{{"model", to_json(c.model)}, {"data", to_json(c.data)}, {"train", to_json(c.train)}};
}

ModelConfig model_from_json(const json& j, const std::string& path) {
  Fields f(j, path);
  ModelConfig c;
  std::string preset;
  f.get("preset", preset);
  if (!preset.empty()) c = model_preset(preset);  // explicit keys below override the preset
  f.get("image_size", c.image_size);
  f.get("patch_size", c.patch_size);
  f.get("in_chans", c.in_chans);
  f.get("num_classes", c.num_classes);
  f.get("dim", c.dim);
  f.get("depth", c.depth);
  f.get("heads", c.heads);
  f.get("head_dim", c.head_dim);
  f.get("mlp_ratio", c.mlp_ratio);
  f.get("mlp", c.mlp);
  f.get("qkv_bias", c.qkv_bias);
  f.get("pool", c.pool);
  f.get("pos", c.pos);
  f.get("rope_theta", c.rope_theta);
  f.get("drop_rate", c.drop_rate);
  f.get("drop_path", c.drop_path);
  f.get("norm_eps", c.norm_eps);
  f.get("fc_norm", c.fc_norm);
  f.get("layer_scale", c.layer_scale);
  if (j.contains("class_token")) {
    bool v = false;
    f.get("class_token", v);
    c.class_token = v;
  }
  f.get("dist_token", c.dist_token);
  f.get("dist_head", c.dist_head);
  f.get("reg_tokens", c.reg_tokens);
  f.get("no_embed_class", c.no_embed_class);
  f.get("mean", c.mean);
  f.get("std", c.std);
  f.get("label_names", c.label_names);
  if (const json* a = f.object("attention")) {
    const std::string apath = f.key_path("attention");
    if (a->is_string()) {
      c.attention.name = a->get<std::string>();
    } else {
      if (!a->is_object()) fail(apath, ": expected a name or an object, got ", type_name(*a));
      auto name = a->find("name");
      if (name == a->end() || !name->is_string()) fail(apath, ".name: expected a string");
      c.attention.name = name->get<std::string>();
      c.attention.options = *a;
      c.attention.options.erase("name");
      if (auto plugin = a->find("plugin"); plugin != a->end()) {
        if (!plugin->is_string()) fail(apath, ".plugin: expected a string");
        c.attention.plugin = plugin->get<std::string>();
        c.attention.options.erase("plugin");
      }
    }
  }
  f.finish();
  return c;
}

DataConfig data_from_json(const json& j, const std::string& path) {
  Fields f(j, path);
  DataConfig c;
  f.get("spec", c.spec);
  f.get("val_size", c.val_size);
  f.get("val_seed", c.val_seed);
  f.get("skip_bad_images", c.skip_bad_images);
  f.get("reduced_decode", c.reduced_decode);
  f.get("decode", c.decode);
  f.get("hw_decoder_load", c.hw_decoder_load);
  f.get("image_size", c.image_size);
  f.get("crop_pct", c.crop_pct);
  f.get("crop_mode", c.crop_mode);
  f.get("interpolation", c.interpolation);
  f.get("channels", c.channels);
  f.get("workers", c.workers);
  if (const json* s = f.object("synthetic")) {
    Fields g(*s, f.key_path("synthetic"));
    g.get("train", c.synthetic.train);
    g.get("test", c.synthetic.test);
    g.get("classes", c.synthetic.classes);
    g.get("image_size", c.synthetic.image_size);
    g.get("channels", c.synthetic.channels);
    g.get("seed", c.synthetic.seed);
    g.finish();
  }
  f.finish();
  return c;
}

TrainConfig train_from_json(const json& j, const std::string& path) {
  Fields f(j, path);
  TrainConfig c;
  f.get("epochs", c.epochs);
  f.get("batch_size", c.batch_size);
  f.get("eval_batch_size", c.eval_batch_size);
  f.get("lr", c.lr);
  f.get("min_lr", c.min_lr);
  f.get("warmup_epochs", c.warmup_epochs);
  f.get("weight_decay", c.weight_decay);
  f.get("beta1", c.beta1);
  f.get("beta2", c.beta2);
  f.get("eps", c.eps);
  f.get("grad_clip", c.grad_clip);
  f.get("label_smoothing", c.label_smoothing);
  f.get("ema_decay", c.ema_decay);
  f.get("seed", c.seed);
  f.get("threads", c.threads);
  f.get("device", c.device);
  f.get("precision", c.precision);
  f.get("tf32", c.tf32);
  f.get("cuda_graph", c.cuda_graph);
  if (const json* a = f.object("augment")) {
    Fields g(*a, f.key_path("augment"));
    g.get("crop_padding", c.augment.crop_padding);
    g.get("flip", c.augment.flip);
    g.get("mixup_alpha", c.augment.mixup_alpha);
    g.get("cutmix_alpha", c.augment.cutmix_alpha);
    g.get("mix_prob", c.augment.mix_prob);
    g.get("rrc", c.augment.rrc);
    g.get("scale", c.augment.scale);
    g.get("ratio", c.augment.ratio);
    g.get("interpolation", c.augment.interpolation);
    g.get("re_prob", c.augment.re_prob);
    g.get("re_mode", c.augment.re_mode);
    g.get("re_count", c.augment.re_count);
    g.get("auto_augment", c.augment.auto_augment);
    g.get("color_jitter", c.augment.color_jitter);
    g.finish();
  }
  f.finish();
  return c;
}

RunConfig run_from_json(const json& j) {
  Fields f(j, "");
  RunConfig c;
  if (const json* m = f.object("model")) c.model = model_from_json(*m, "model");
  if (const json* d = f.object("data")) c.data = data_from_json(*d, "data");
  if (const json* t = f.object("train")) c.train = train_from_json(*t, "train");
  f.finish();
  return c;
}

AttentionConfig attention_from_spec(const std::string& text, const std::string& flag) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !(j.is_object() || j.is_string())) j = text;
  return model_from_json(json{{"attention", j}}, flag).attention;
}

std::string json_error_text(const json::exception& e) {
  // e.what() is "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
  const std::string what = e.what();
  const auto p = what.find("] ");
  return p == std::string::npos ? what : what.substr(p + 2);
}

std::string dump_json(const json& j, int indent) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {  // a syntax error, or a number past double's range
    fail(path, ": invalid JSON: ", json_error_text(e));
  }
}

void set_path(json& doc, const std::string& path, const json& value, const std::string& what) {
  const std::vector<std::string> keys = split(path, '.');
  json* node = &doc;
  std::string parent = path;  // the document itself is named by the whole path
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    if (key.empty()) fail(what, ": empty key in '", path, "'");
    if (!node->is_object()) fail(what, ": '", parent, "' is not an object");
    if (i + 1 == keys.size()) {
      (*node)[key] = value;
      return;
    }
    // Setting a field of the attention given as a plain name turns it into {"name": ...}.
    json& child = (*node)[key];
    if (child.is_string() && key == "attention") child = json{{"name", child.get<std::string>()}};
    if (child.is_null()) child = json::object();
    node = &child;
    parent = i == 0 ? key : parent + "." + key;
  }
}

void apply_override(json& doc, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) fail("--set ", assignment, ": expected key.path=value");
  const std::string text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;
  set_path(doc, assignment.substr(0, eq), value, "--set " + assignment);
}

}  // namespace vitlab
