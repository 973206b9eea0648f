#pragma once
// Run configuration: model, data and training settings, each to and from JSON. Parsing is
// strict: an unknown key or a value of the wrong type is an error naming the key's full path
// (e.g. "model.depth: expected an integer, got \"six\"").
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vitlab {

using json = nlohmann::json;

struct AttentionConfig {
  std::string name = "mha";
  json options = json::object();  // variant-specific, validated by the variant's constructor
  // The plugin file that registered the variant (attention/plugins.h), recorded with the run and
  // its checkpoint so that opening one without the plugin can say which file it needs.
  std::string plugin;
};

struct ModelConfig {
  std::string preset;  // "vit-micro", "vit-tiny", "vit-small", "vit-base" or "" (explicit sizes)
  int image_size = 28;
  int patch_size = 4;
  int in_chans = 1;
  int num_classes = 10;
  int dim = 128;
  int depth = 6;
  int heads = 4;
  int head_dim = 0;  // 0: dim / heads
  double mlp_ratio = 4.0;
  // The MLP: "gelu" (fc1, the exact GELU, fc2), "gelu_tanh" (the same with GELU's tanh
  // approximation, timm's act_layer 'gelu_tanh', as SigLIP's ViTs) or "swiglu" (timm's
  // SwiGLUPacked with SiLU, as DINOv2's giant and the pathology ViTs built on it: fc1 gives 2
  // halves of mlp_hidden() / 2, the first gated by SiLU times the second, fc2 reads the product;
  // Shazeer 2020, eq. 6).
  std::string mlp = "gelu";
  bool qkv_bias = true;
  std::string pool = "cls";     // "cls" (class token), "mean" or "avgmax" (timm's: (mean + max) / 2)
  std::string pos = "learned";  // "learned", "sincos", "rope" (2-D axial, inside attention) or "none"
  double rope_theta = 100.0;    // RoPE frequency base (100 for patch grids, Heo et al. 2024)
  double drop_rate = 0.0;       // dropout after the position embedding and inside the MLP
  double drop_path = 0.0;       // stochastic depth, linearly increasing to this over the blocks
  double norm_eps = 1e-6;
  // timm's options for pretrained ViTs. fc_norm: the final LayerNorm acts on the pooled token
  // (named fc_norm) instead of on every token (norm), as timm does with average pooling.
  // layer_scale: LayerScale (CaiT, DeiT III; timm's init_values): each residual branch is
  // multiplied by a learned per-channel gamma initialised to this value; 0: none.
  bool fc_norm = false;
  double layer_scale = 0.0;
  // A class token with pool "mean" (timm's class_token=True with global_pool='avg', as MAE's
  // fine-tuned ViTs): the mean then runs over the patch tokens only. Unset: as pool says.
  std::optional<bool> class_token;
  // Tokens before the patches besides the class token (timm's names): dist_token, DeiT's
  // distillation token right after the class token, and with dist_head its own classifier
  // (head_dist) whose logits are averaged with the class head's, as DeiT evaluates; reg_tokens
  // register tokens (Darcet et al. 2024), learned, read by no head. no_embed_class: the position
  // table covers the patches alone and the prefix tokens carry no position (timm's option).
  bool dist_token = false;
  bool dist_head = false;
  int reg_tokens = 0;
  bool no_embed_class = false;
  // Input normalisation, one value or one per channel (part of the model, like timm's
  // pretrained_cfg, so a checkpoint evaluates with the statistics it was trained with).
  std::vector<double> mean{0.5};
  std::vector<double> std{0.5};
  // The name of each class, by class index (timm's label_names): filled from an image folder's
  // class folders when a run starts, so a checkpoint maps an evaluation folder by name.
  std::vector<std::string> label_names;
  AttentionConfig attention;

  int grid() const { return image_size / patch_size; }
  int num_patches() const { return grid() * grid(); }
  bool has_class_token() const { return class_token.value_or(pool == "cls"); }
  int num_prefix_tokens() const { return (has_class_token() ? 1 : 0) + (dist_token ? 1 : 0) + reg_tokens; }
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }
  int pos_tokens() const { return no_embed_class ? num_patches() : num_tokens(); }  // rows of pos_embed
  int head_width() const { return head_dim > 0 ? head_dim : dim / heads; }
  int mlp_hidden() const { return static_cast<int>(dim * mlp_ratio); }  // fc1's outputs (timm's hidden_features)
  int mlp_inner() const { return mlp == "swiglu" ? mlp_hidden() / 2 : mlp_hidden(); }  // fc2's inputs
  // mean or std with one value per input channel (a single value repeated), as timm and
  // transformers write them.
  std::vector<double> per_channel(std::vector<double> v) const {
    if (v.size() == 1) v.assign(in_chans, v[0]);
    return v;
  }
  void validate() const;
};

struct SyntheticConfig {
  int train = 3000;
  int test = 1000;
  int classes = 10;
  int image_size = 28;
  int channels = 1;
  int seed = 1234;
};

struct DataConfig {
  // "fashion-mnist", "idx:PATH_PREFIX", "cifar10:DIR", "cifar100:DIR", "folder:DIR", "synthetic"
  std::string spec = "fashion-mnist";
  // Held out of the training split for model selection: a seeded, stratified random subset
  // (the same fraction of every class). >= 1: that many images; in (0, 1): that fraction; 0: none.
  double val_size = 0.1;
  int val_seed = 0;     // the hold-out's seed (apart from train.seed, so seeds share one split)
  int image_size = 0;   // resize every image to this square size (0: keep the data's size)
  // With image_size: timm's evaluation transform. crop_pct > 0 resizes to
  // floor(image_size / crop_pct), the shorter side (crop_mode "center") or both sides ("squash",
  // as transformers' processors do), and takes the centre image_size x image_size crop; 0 resizes
  // the whole image to image_size x image_size. interpolation: "bilinear" or "bicubic"
  // (antialiased, as PIL resizes).
  double crop_pct = 0.0;
  std::string crop_mode = "center";
  std::string interpolation = "bilinear";
  int channels = 0;     // image folders: decode to 1 (L) or 3 (RGB) channels (0: the model's in_chans)
  int workers = 0;      // image-folder decoding threads (0: all cores)
  // Image folders: an unreadable image is an error naming it (false), or is skipped and counted
  // in the result (true; in training another image takes its place, so batches keep their shape).
  bool skip_bad_images = false;
  // Image folders on CUDA: "auto" decodes JPEGs on the GPU with nvJPEG where vitlab was built
  // with it (data/nvjpeg_loader.h), "cpu" always on the CPU cores (OpenCV).
  std::string decode = "auto";
  // The nvJPEG loader: the share of each batch decoded by the GPU's hardware JPEG decoder (A100,
  // H100) in one batched call; the rest goes to nvJPEG's hybrid decoder, its Huffman stage on
  // data.workers - 1 host threads (DALI's hw_decoder_load). The hardware call's work waits
  // behind every kernel queued before it (experiments/data_pipeline: a graphed step), the hybrid
  // decoder's does not, but it needs the cores. 1: all on the hardware decoder.
  double hw_decoder_load = 1.0;
  // Image folders, training on the CPU decoder: a JPEG whose random crop is at least 2, 4 or 8
  // times the model's size is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), so the
  // crop is still shrunk but the decode costs less. The pixels then differ slightly from PIL's
  // full decode (timm's); false decodes every image at full size. Evaluation always does.
  bool reduced_decode = true;
  SyntheticConfig synthetic;
  void validate() const;
};

struct AugmentConfig {
  int crop_padding = 2;  // random crop after zero padding by this many pixels (0: off)
  bool flip = false;     // random horizontal flip
  double mixup_alpha = 0.0;
  double cutmix_alpha = 0.0;
  double mix_prob = 1.0;  // probability that a batch is mixed when mixup or cutmix is on
  // timm's RandomResizedCrop (image folders, per image on the decode workers): a crop of
  // scale[0]..scale[1] of the area and aspect ratio ratio[0]..ratio[1] (log-uniform), resized
  // to the model's size with `interpolation` (bilinear or bicubic, PIL's filters).
  bool rrc = false;
  std::vector<double> scale{0.08, 1.0};
  std::vector<double> ratio{3.0 / 4.0, 4.0 / 3.0};
  std::string interpolation = "bilinear";
  // timm's RandomErasing on the normalised batch: per image with probability re_prob, 1 to
  // re_count rectangles (exactly 1 when re_count is 1) of 2-33% of the area, filled per re_mode:
  // "const" (0), "rand" (one normal value per channel) or "pixel" (normal per pixel).
  double re_prob = 0.0;
  std::string re_mode = "const";
  int re_count = 1;
  // After the crop and flip, before normalisation, as in timm's train transform (the ops are
  // PIL's, to within one grey level; data/auto_augment.h): auto_augment is timm's RandAugment
  // string ("rand-m9-mstd0.5-inc1": magnitude m, n ops per image, magnitude noise mstd, its
  // bound mmax, inc1 the ops that grow with m, p each op's probability, w0 timm's op weights) or
  // "trivial" (torchvision's TrivialAugmentWide); "" is off. color_jitter is torchvision's
  // ColorJitter: one number for brightness, contrast and saturation, or the three (timm turns it
  // off under auto_augment; vitlab applies both when both are set).
  std::string auto_augment;
  std::vector<double> color_jitter;
};

struct TrainConfig {
  int epochs = 10;
  int batch_size = 128;
  int eval_batch_size = 500;
  double lr = 1e-3;
  double min_lr = 1e-5;
  double warmup_epochs = 1.0;
  double weight_decay = 0.05;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip = 1.0;  // max global gradient norm (0: off)
  double label_smoothing = 0.1;
  double ema_decay = 0.0;  // 0: no EMA; otherwise evaluation uses the EMA weights
  int seed = 0;
  int threads = 0;             // CPU threads (0: all cores)
  std::string device = "auto";  // "auto", "cpu", "cuda", "cuda:N"
  // "auto" (bf16 autocast on CUDA, float32 elsewhere), "fp32" or "bf16" (autocast).
  std::string precision = "auto";
  bool tf32 = true;  // float32 matrix products on CUDA through TF32 tensor cores
  // Capture the training step once as a CUDA graph and replay it (train/cuda_graph.h): on CUDA
  // with LibTorch >= 2.4, one process, no mixup/cutmix; a run asking for it elsewhere is refused.
  bool cuda_graph = false;
  AugmentConfig augment;
  void validate() const;
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  void validate() const;
};

// Presets: the sizes of timm's ViTs (vit-micro is vitlab's CPU-sized model).
ModelConfig model_preset(const std::string& name);

json to_json(const ModelConfig& c);
json to_json(const DataConfig& c);
json to_json(const TrainConfig& c);
json to_json(const RunConfig& c);
// `path` prefixes the key names in error messages ("model", "train", ...).
ModelConfig model_from_json(const json& j, const std::string& path = "model");
DataConfig data_from_json(const json& j, const std::string& path = "data");
TrainConfig train_from_json(const json& j, const std::string& path = "train");
RunConfig run_from_json(const json& j);
// Removes from a train section (JSON) the keys that say where and how a run executes, not what
// it computes (threads, device, cuda_graph): a resumed run may change them, and runs that differ
// only in them are the same setting.
void erase_execution_keys(json& train);

// An attention spec given on the command line as `flag`: a registry name ("mha") or a JSON
// object with "name" ('{"name":"gqa","kv_heads":2}').
AttentionConfig attention_from_spec(const std::string& text, const std::string& flag);

// JSON text of `j` (indented when indent >= 0). Strings that are not valid UTF-8 (a folder or
// path named in another encoding, bytes given to --set) are written with U+FFFD in place of
// the bad bytes, where nlohmann's dump() would throw: every JSON vitlab writes goes through here.
std::string dump_json(const json& j, int indent = -1);
// nlohmann's message without its "[json.exception.type_error.302] " prefix, for errors that
// name the file themselves.
std::string json_error_text(const json::exception& e);
// Parses a JSON file, failing with a message that names the file (and line, for syntax errors).
json read_json_file(const std::string& path);
// Applies "a.b.c=value" to a JSON document; value is parsed as JSON when it is valid JSON and
// taken as a string otherwise (so --set model.attention.name=gqa needs no quotes).
// Sets the dotted `path` ("model.attention.kv_heads") of a config document to `value`, creating
// objects on the way; errors start with `what`.
void set_path(json& doc, const std::string& path, const json& value, const std::string& what);
// One --set assignment "key.path=value"; the value is JSON, or a string when it does not parse.
void apply_override(json& doc, const std::string& assignment);

}  // namespace vitlab
