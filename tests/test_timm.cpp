// timm's hub configs read into vitlab ModelConfigs, a checkpoint in timm's layout (timm's
// parameter names, bf16 weights, timm's config.json) loading through load_model, parity with
// timm's own logits, position-table resampling and export to timm.
#include <gtest/gtest.h>

#include "test_util.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/io/timm.h"
#include "vitlab/device.h"
#include "vitlab/train/checkpoint.h"

#include <cstdlib>
#include <map>
#include <set>

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::expected_of;
using vitlab::test::fixture_dirs;
using vitlab::test::relative_error;
using vitlab::test::TempDir;
using vitlab::test::write_file;

TEST(Timm, ArchitectureNamesSizeTheModel) {
  json j{{"architecture", "vit_small_patch16_224.augreg_in21k_ft_in1k"}, {"num_classes", 1000},
         {"global_pool", "token"},
         {"pretrained_cfg", {{"input_size", {3, 224, 224}}, {"mean", {0.5, 0.5, 0.5}}, {"std", {0.5, 0.5, 0.5}},
                             {"crop_pct", 0.9}}}};
  ModelConfig c = model_from_timm_config(j, "config.json");
  EXPECT_EQ(c.dim, 384);
  EXPECT_EQ(c.depth, 12);
  EXPECT_EQ(c.heads, 6);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.image_size, 224);
  EXPECT_EQ(c.in_chans, 3);
  EXPECT_EQ(c.pool, "cls");
  EXPECT_FALSE(c.fc_norm);
  EXPECT_EQ(c.num_tokens(), 197);

  // Average pooling: timm keeps the class token unless told otherwise and normalises the pooled token.
  j = {{"architecture", "vit_base_patch32_384"}, {"global_pool", "avg"}, {"num_classes", 7}};
  c = model_from_timm_config(j, "config.json");
  EXPECT_EQ(c.dim, 768);
  EXPECT_EQ(c.grid(), 12);
  EXPECT_EQ(c.pool, "mean");
  EXPECT_TRUE(c.has_class_token());
  EXPECT_TRUE(c.fc_norm);
  j["model_args"] = {{"class_token", false}, {"init_values", 1e-5}, {"embed_dim", 96}, {"num_heads", 4}};
  c = model_from_timm_config(j, "config.json");
  EXPECT_FALSE(c.has_class_token());
  EXPECT_EQ(c.layer_scale, 1e-5);
  EXPECT_EQ(c.head_width(), 24);
}

// The newer layouts by architecture name alone, as the hub's config.json gives them.
TEST(Timm, RegisterDistilledAndDinov2NamesSetTheirOptions) {
  ModelConfig c = model_from_timm_config({{"architecture", "vit_small_patch14_reg4_dinov2.lvd142m"}, {"num_classes", 10}},
                                         "config.json");
  EXPECT_EQ(c.patch_size, 14);
  EXPECT_EQ(c.image_size, 518);
  EXPECT_EQ(c.layer_scale, 1e-5);
  EXPECT_EQ(c.reg_tokens, 4);
  EXPECT_TRUE(c.no_embed_class);
  EXPECT_EQ(c.pos_tokens(), 37 * 37);
  EXPECT_EQ(c.num_tokens(), 1 + 4 + 37 * 37);
  EXPECT_EQ(c.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  c = model_from_timm_config({{"architecture", "vit_base_patch16_reg4_gap_256"}}, "config.json");
  EXPECT_FALSE(c.has_class_token());
  EXPECT_EQ(c.pool, "mean");
  EXPECT_TRUE(c.fc_norm);
  EXPECT_EQ(c.num_prefix_tokens(), 4);
  EXPECT_EQ(c.image_size, 256);
  c = model_from_timm_config({{"architecture", "deit_tiny_distilled_patch16_224.fb_in1k"}}, "config.json");
  EXPECT_TRUE(c.dist_token && c.dist_head);
  EXPECT_EQ(c.num_tokens(), 2 + 196);
  EXPECT_EQ(c.dim, 192);
  c = model_from_timm_config({{"architecture", "vit_tiny_patch16_224"}, {"global_pool", "avgmax"}}, "config.json");
  EXPECT_EQ(c.pool, "avgmax");
  EXPECT_TRUE(c.fc_norm);
  // A distilled model has no timm ViT export; registers and avgmax go out in model_args.
  EXPECT_NE(error_of([] {
              ModelConfig d;
              d.dist_token = d.dist_head = true;
              timm_config_from_model(d);
            }).find("model.dist_token"),
            std::string::npos);
  c.reg_tokens = 2, c.no_embed_class = true;
  const json out = timm_config_from_model(c);
  EXPECT_EQ(out["global_pool"], "avgmax");
  EXPECT_EQ(out["model_args"]["reg_tokens"], 2);
  EXPECT_EQ(model_from_timm_config(out, "out.json").num_tokens(), c.num_tokens());
}

// Gated MLPs: DINOv2's giant by name (SwiGLUPacked, SiLU, headless as it ships), and by
// model_args naming timm's classes, as the configs of models built on it do.
TEST(Timm, SwigluMlpByNameAndByModelArgs) {
  ModelConfig c = model_from_timm_config({{"architecture", "vit_giant_patch14_dinov2.lvd142m"}, {"num_classes", 0}},
                                         "config.json");
  EXPECT_EQ(c.mlp, "swiglu");
  EXPECT_EQ(c.dim, 1536);
  EXPECT_EQ(c.depth, 40);
  EXPECT_EQ(c.heads, 24);
  EXPECT_EQ(c.mlp_hidden(), 8192);  // timm: int(1536 * 2.66667 * 2)
  EXPECT_EQ(c.mlp_inner(), 4096);
  EXPECT_EQ(c.num_classes, 0);
  c = model_from_timm_config({{"architecture", "vit_giant_patch14_224"}}, "config.json");
  EXPECT_EQ(c.mlp, "gelu");
  EXPECT_EQ(c.dim, 1408);
  EXPECT_EQ(c.mlp_hidden(), 6144);  // timm: int(1408 * 48 / 11)
  c = model_from_timm_config({{"architecture", "vit_huge_patch14_224"}}, "config.json");
  EXPECT_EQ(c.dim, 1280);
  EXPECT_EQ(c.depth, 32);

  json j{{"architecture", "vit_huge_patch14_224"},
         {"model_args", {{"num_classes", 0}, {"reg_tokens", 4}, {"init_values", 1e-5}, {"mlp_ratio", 5.3375},
                         {"mlp_layer", "timm.layers.SwiGLUPacked"}, {"act_layer", "torch.nn.SiLU"}}}};
  c = model_from_timm_config(j, "config.json");
  EXPECT_EQ(c.mlp, "swiglu");
  EXPECT_EQ(c.mlp_hidden(), 6832);
  const json out = timm_config_from_model(c);  // written back as timm's kwargs name them
  EXPECT_EQ(out["model_args"]["mlp_layer"], "SwiGLUPacked");
  EXPECT_EQ(model_from_timm_config(out, "out.json").mlp, "swiglu");
  // timm gates SwiGLUPacked with the ViT's act_layer, GELU unless told: not vitlab's swiglu.
  j["model_args"].erase("act_layer");
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); })
                .find("c.json: model_args.act_layer: SwiGLUPacked gated by GELU (timm's default) is not supported (SiLU)"),
            std::string::npos);
  j["model_args"]["mlp_layer"] = "SwiGLU";
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); })
                .find("model_args.mlp_layer: 'SwiGLU' is not supported (Mlp, SwiGLUPacked)"),
            std::string::npos);
  j["model_args"]["mlp_layer"] = "Mlp", j["model_args"]["act_layer"] = "silu";
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); })
                .find("model_args.act_layer: 'silu' is not supported with timm's Mlp (GELU, gelu_tanh)"),
            std::string::npos);
}

// GELU's tanh approximation (timm's act_layer 'gelu_tanh', class GELUTanh), read by either name
// and written back by timm's string.
TEST(Timm, GeluTanhByNameAndByClass) {
  for (const char* act : {"gelu_tanh", "timm.layers.activations.GELUTanh"}) {
    const json j{{"architecture", "vit_base_patch16_224"}, {"model_args", {{"act_layer", act}}}};
    const ModelConfig c = model_from_timm_config(j, "config.json");
    EXPECT_EQ(c.mlp, "gelu_tanh") << act;
    EXPECT_EQ(c.mlp_hidden(), 3072) << act;
    const json out = timm_config_from_model(c);
    EXPECT_EQ(out["model_args"]["act_layer"], "gelu_tanh");
    EXPECT_EQ(model_from_timm_config(out, "out.json").mlp, "gelu_tanh");
  }
  EXPECT_FALSE(timm_config_from_model(ModelConfig{})["model_args"].contains("act_layer"));
}

// A gated checkpoint whose config leaves the MLP out (as the hub's configs of such models do):
// the error names the tensor and says what to add.
TEST(Timm, GatedWeightsUnderAPlainConfigSayWhatToAdd) {
  json cfg{{"architecture", "vit_tiny_patch16_224"}, {"num_classes", 0},
           {"model_args", {{"embed_dim", 32}, {"depth", 1}, {"num_heads", 2}, {"patch_size", 8}, {"img_size", 16},
                           {"mlp_layer", "SwiGLUPacked"}, {"act_layer", "SiLU"}}}};
  ViT gated(model_from_timm_config(cfg, "config.json"));
  TempDir dir;
  save_safetensors(dir / "model.safetensors", model_tensors(gated), {{"format", "pt"}});
  cfg["model_args"].erase("mlp_layer"), cfg["model_args"].erase("act_layer");
  write_file(dir / "config.json", cfg.dump());
  const std::string e = error_of([&] { load_model(dir.path); });
  EXPECT_NE(e.find("blocks.0.mlp.fc2.weight' has shape [32, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("add \"mlp_layer\": \"SwiGLUPacked\", \"act_layer\": \"SiLU\" to its model_args"),
            std::string::npos) << e;
}

TEST(Timm, WhatVitlabCannotHoldIsNamed) {
  EXPECT_EQ(error_of([] { model_from_timm_config({{"architecture", "deit3_small_patch16_224"}}, "c.json"); })
                .rfind("c.json: architecture 'deit3_small_patch16_224' is not a timm ViT", 0),
            0u);
  json j{{"architecture", "vit_tiny_patch16_224"}, {"model_args", {{"qk_norm", true}}}};
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); }).find("model_args.qk_norm: true"), std::string::npos);
  j = {{"architecture", "vit_tiny_patch16_224"}, {"global_pool", "map"}};
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); }).find("global_pool 'map'"), std::string::npos);
  j["model_args"] = {{"reg_tokens", 0}, {"no_embed_class", false}, {"qk_norm", false}};  // timm's defaults pass
  j["global_pool"] = "token";
  EXPECT_EQ(model_from_timm_config(j, "c.json").dim, 192);
}

// A directory as the hub has it: model.safetensors with timm's names in bf16 and timm's config.json.
TEST(Timm, CheckpointInTimmsLayoutLoads) {
  json cfg{{"architecture", "vit_tiny_patch16_224"}, {"global_pool", "avg"}, {"num_classes", 5},
           {"model_args", {{"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"patch_size", 4}, {"img_size", 16},
                           {"in_chans", 1}, {"init_values", 0.1}}},
           {"pretrained_cfg", {{"input_size", {1, 16, 16}}, {"mean", {0.5}}, {"std", {0.25}}}}};
  ViT src(model_from_timm_config(cfg, "config.json"));
  src->eval();
  TempDir dir;
  NamedTensors bf16;
  for (auto& [name, t] : model_tensors(src)) bf16.emplace_back(name, t.to(torch::kBFloat16));
  save_safetensors(dir / "model.safetensors", bf16, {{"format", "pt"}});
  write_file(dir / "config.json", cfg.dump());
  ViT loaded = load_model(dir.path);
  loaded->eval();
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model_tensors(src)) t.copy_(t.to(torch::kBFloat16));  // the same rounding
  auto x = torch::randn({2, 1, 16, 16});
  EXPECT_TRUE(torch::equal(loaded->forward(x), src->forward(x)));
  EXPECT_TRUE(loaded->cfg.fc_norm);
  EXPECT_TRUE(loaded->named_parameters().contains("blocks.1.ls2.gamma"));
}

// Parity with timm itself. Fixture folders come from experiments/timm_parity/make_fixtures.py
// (run where timm is installed): timm ViTs with random weights as the hub ships them, inputs,
// and timm's float64 logits on the stored weights, at the model's size and, for some, at
// another size through timm's checkpoint filter (position embeddings resampled). The tiny set
// is committed; $VITLAB_TIMM_PARITY_DIR adds more (the large set, on the GPU machine).
std::vector<std::string> parity_fixtures() {
  auto dirs = fixture_dirs(std::string(VITLAB_FIXTURES) + "/timm");
  if (const char* extra = std::getenv("VITLAB_TIMM_PARITY_DIR"))
    for (const auto& d : fixture_dirs(extra)) dirs.push_back(d);
  return dirs;
}

// vitlab's logits against timm's for the fixture's inputs at each stored size, on `device`:
// float32 within 1e-4 relative everywhere; float64 (CPU) to rounding: 1e-9 at the stored size,
// 1e-6 where both sides resampled the position table in float32 with their own kernels.
void expect_parity(const std::string& dir, const torch::Device& device) {
  const auto expected = expected_of(dir);
  const ModelConfig stored = read_checkpoint_config(dir);
  int sizes_checked = 0;
  for (const std::string suffix : {"", "_resampled"}) {
    if (!expected.count("inputs" + suffix)) continue;
    const torch::Tensor x = expected.at("inputs" + suffix), logits = expected.at("logits" + suffix);
    ModelConfig c = stored;
    c.image_size = static_cast<int>(x.size(-1));
    ViT model = load_model(dir, c);
    model->eval();
    model->to(device);
    torch::NoGradGuard no_grad;
    EXPECT_LE(relative_error(model->forward(x.to(device)), logits), 1e-4) << dir << " float32 " << suffix;
    if (device.is_cpu()) {
      model->to(torch::kDouble);
      EXPECT_LE(relative_error(model->forward(x.to(torch::kDouble)), logits), suffix.empty() ? 1e-9 : 1e-6)
          << dir << " float64 " << suffix;
    }
    ++sizes_checked;
  }
  EXPECT_GE(sizes_checked, 1) << dir << ": no inputs in expected.safetensors";
}

TEST(TimmParity, CommittedFixturesCoverTheCases) {
  // The committed set: class token, average pooling with LayerScale, no class token, register
  // tokens outside the position table (average pooling and a DINOv2-style patch-14 model with
  // LayerScale), DeiT's distilled token and head, avgmax pooling, SwiGLU MLPs, a backbone
  // without a classifier; f32, bf16 and f16 weights; resampling up and down; timm's evaluation
  // transform.
  std::set<std::string> dtypes, archs;
  int resampled = 0, with_images = 0, gated = 0, headless = 0;
  for (const auto& dir : parity_fixtures()) {
    if (dir.rfind(VITLAB_FIXTURES, 0) != 0) continue;
    archs.insert(read_json_file(join_path(dir, "config.json"))["architecture"].get<std::string>());
    const ModelConfig c = read_checkpoint_config(dir);
    gated += c.mlp == "swiglu";
    headless += c.num_classes == 0;
    for (const auto& [name, t] : load_safetensors(join_path(dir, "model.safetensors")))
      dtypes.insert(c10::toString(t.scalar_type()));
    const auto e = expected_of(dir);
    resampled += e.count("inputs_resampled");
    with_images += e.count("pixels");
  }
  EXPECT_EQ(dtypes, (std::set<std::string>{"BFloat16", "Float", "Half"}));
  for (const char* a : {"vit_small_patch14_reg4_dinov2", "deit_tiny_distilled_patch16_224", "vit_giant_patch14_dinov2"})
    EXPECT_TRUE(archs.count(a)) << a;
  EXPECT_GE(gated, 2);     // SwiGLU by the giant's name and by model_args
  EXPECT_GE(headless, 1);  // num_classes 0: the features are compared
  EXPECT_GE(resampled, 4);
  EXPECT_GE(with_images, 1);
}

TEST(TimmParity, LogitsMatchTimmOnCpu) {
  const auto dirs = parity_fixtures();
  ASSERT_GE(dirs.size(), 3u) << "the committed fixtures are missing from " << VITLAB_FIXTURES;
  for (const auto& dir : dirs) expect_parity(dir, torch::kCPU);
}

TEST(TimmParity, LogitsMatchTimmOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  configure_tf32(false);  // float32 products in float32, as the 1e-4 needs
  for (const auto& dir : parity_fixtures()) expect_parity(dir, torch::Device(torch::kCUDA));
}

// Position-table resampling is timm's: the identity at the same grid, the class-token row kept,
// a constant table stays constant (the antialiased bicubic weights sum to one), and a table
// that is linear along the grid stays close to linear when upsampled.
TEST(TimmParity, PositionTableResampling) {
  auto pos = torch::randn({1, 1 + 16, 8});
  EXPECT_TRUE(torch::equal(resample_pos_embed(pos, 1, 4), pos));
  auto up = resample_pos_embed(pos, 1, 6);
  ASSERT_EQ(up.sizes(), (std::vector<int64_t>{1, 37, 8}));
  EXPECT_TRUE(torch::equal(up.narrow(1, 0, 1), pos.narrow(1, 0, 1)));
  auto flat = torch::full({1, 9, 4}, 0.75);
  EXPECT_TRUE(torch::allclose(resample_pos_embed(flat, 0, 2), torch::full({1, 4, 4}, 0.75), 1e-6, 1e-6));
  // The error a model built for another size gets when the table cannot be resampled.
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 16, c.patch_size = 4;
  ViT small(c);
  TempDir dir;
  NamedTensors t = model_tensors(small);
  for (auto& [name, v] : t)
    if (name == "pos_embed") v = torch::zeros({1, 1 + 15, 16});  // not a square grid
  save_safetensors(dir / "model.safetensors", t, {});
  c.image_size = 24;
  ViT big(c);
  EXPECT_NE(error_of([&] { load_weights(big, dir / "model.safetensors"); }).find("pos_embed"), std::string::npos);
}

// vitlab's MHA models go out as timm checkpoints and come back (through timm's config) as the
// same function; what timm cannot hold is refused by name.
TEST(TimmParity, ExportRoundTrips) {
  ModelConfig c;
  c.dim = 24, c.depth = 2, c.heads = 3, c.image_size = 12, c.patch_size = 4, c.in_chans = 1, c.num_classes = 7;
  c.pool = "mean", c.class_token = true, c.fc_norm = true, c.layer_scale = 0.5, c.mean = {0.3}, c.std = {0.4};
  ViT src(c);
  src->eval();
  TempDir dir;
  save_timm_checkpoint(dir / "t", src);
  const json written = read_json_file(dir / "t/config.json");
  EXPECT_TRUE(is_timm_config(written));
  EXPECT_EQ(written["model_args"]["init_values"], 0.5);
  EXPECT_EQ(written["pretrained_cfg"]["input_size"], json({1, 12, 12}));
  ViT back = load_model(dir / "t");
  back->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({3, 1, 12, 12});
  EXPECT_TRUE(torch::equal(back->forward(x), src->forward(x)));
  EXPECT_EQ(to_json(back->cfg)["mean"], json({0.3}));

  c.attention = {"gqa", json{{"kv_heads", 1}}};
  ViT gqa(c);
  EXPECT_NE(error_of([&] { save_timm_checkpoint(dir / "g", gqa); }).find("model.attention"), std::string::npos);
  EXPECT_FALSE(path_exists(dir / "g"));
  c.attention = {};
  c.norm_eps = 1e-5;
  EXPECT_NE(error_of([&] { timm_config_from_model(c); }).find("model.norm_eps"), std::string::npos);
}

// Fine-tuning adapts pretrained weights as timm does: a one-channel model takes an RGB patch
// kernel summed over its channels (so a gray image gives what the RGB model gives on it
// repeated three times), and a classifier of another size starts fresh; without fine_tune
// both are shape errors.
TEST(TimmParity, FineTuningAdaptsChannelsAndClassifier) {
  ModelConfig c;
  c.dim = 16, c.depth = 1, c.heads = 2, c.image_size = 8, c.patch_size = 4, c.in_chans = 3, c.num_classes = 5;
  ViT rgb(c);
  rgb->eval();
  TempDir dir;
  save_safetensors(dir / "model.safetensors", model_tensors(rgb), {});
  c.in_chans = 1;
  ViT gray(c);
  gray->eval();
  EXPECT_NE(error_of([&] { load_weights(gray, dir / "model.safetensors"); }).find("patch_embed.proj.weight"),
            std::string::npos);
  load_weights(gray, dir / "model.safetensors", /*fine_tune=*/true);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::allclose(gray->forward(x), rgb->forward(x.repeat({1, 3, 1, 1})), 1e-5, 1e-6));

  c.num_classes = 3;
  ViT three(c);
  const torch::Tensor fresh = three->head->weight.clone();
  load_weights(three, dir / "model.safetensors", /*fine_tune=*/true);
  EXPECT_TRUE(torch::equal(three->head->weight, fresh));
  EXPECT_TRUE(torch::equal(three->blocks[0]->as<Block>()->attn->parameters()[0], rgb->blocks[0]->as<Block>()->attn->parameters()[0]));
}
