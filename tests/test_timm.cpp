// timm's hub configs read into vitlab ModelConfigs, and a checkpoint in timm's layout (timm's
// parameter names, bf16 weights, timm's config.json) loading through load_model.
#include <gtest/gtest.h>

#include "test_util.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/io/timm.h"
#include "vitlab/train/checkpoint.h"

using namespace vitlab;
using vitlab::test::error_of;
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

TEST(Timm, WhatVitlabCannotHoldIsNamed) {
  EXPECT_EQ(error_of([] { model_from_timm_config({{"architecture", "deit3_small_patch16_224"}}, "c.json"); })
                .rfind("c.json: architecture 'deit3_small_patch16_224' is not a timm ViT", 0),
            0u);
  json j{{"architecture", "vit_tiny_patch16_224"}, {"model_args", {{"reg_tokens", 4}}}};
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); }).find("model_args.reg_tokens: 4"), std::string::npos);
  j = {{"architecture", "vit_tiny_patch16_224"}, {"global_pool", "map"}};
  EXPECT_NE(error_of([&] { model_from_timm_config(j, "c.json"); }).find("global_pool 'map'"), std::string::npos);
  j["model_args"] = {{"reg_tokens", 0}, {"no_embed_class", false}};  // timm's defaults pass
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
