#include <gtest/gtest.h>

#include "test_util.h"
#include "vitlab/app.h"
#include "vitlab/config.h"
#include "vitlab/error.h"

using namespace vitlab;
using vitlab::test::error_of;

TEST(Config, RoundTripsThroughJson) {
  RunConfig c;
  c.model = model_preset("vit-tiny");
  c.model.image_size = 32, c.model.patch_size = 8, c.model.in_chans = 3, c.model.pool = "mean";
  c.model.pos = "sincos", c.model.mean = {0.1, 0.2, 0.3}, c.model.std = {0.4, 0.5, 0.6};
  c.model.attention.options = {{"future_option", 3}};
  c.model.fc_norm = true, c.model.layer_scale = 1e-5, c.model.class_token = true;
  c.data.spec = "cifar10:/data", c.data.val_size = 123, c.data.synthetic.classes = 7, c.data.hw_decoder_load = 0.25;
  c.train.epochs = 3, c.train.lr = 2.5e-4, c.train.augment.flip = true, c.train.augment.cutmix_alpha = 1.0;
  json j = to_json(c);
  RunConfig back = run_from_json(j);
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(back.model.dim, 192);
  EXPECT_EQ(back.model.depth, 12);
  EXPECT_EQ(back.model.std[2], 0.6);
  EXPECT_EQ(back.train.augment.cutmix_alpha, 1.0);
  EXPECT_EQ(back.data.hw_decoder_load, 0.25);
  EXPECT_FALSE(to_json(RunConfig{}.data).contains("hw_decoder_load"));  // the default: absent, as in older records
  EXPECT_TRUE(back.model.fc_norm);
  EXPECT_EQ(back.model.layer_scale, 1e-5);
  EXPECT_EQ(back.model.num_tokens(), 17);  // 4x4 patches and the class token, pooled by mean
  EXPECT_FALSE(to_json(RunConfig{}.model).contains("fc_norm"));  // off: absent, as in older records
  // and through text
  EXPECT_EQ(to_json(run_from_json(json::parse(j.dump()))), j);
}

TEST(Config, PresetThenExplicitKeysOverride) {
  auto m = model_from_json(json{{"preset", "vit-small"}, {"depth", 4}});
  EXPECT_EQ(m.dim, 384);
  EXPECT_EQ(m.heads, 6);
  EXPECT_EQ(m.depth, 4);
  EXPECT_EQ(model_preset("vit-base").dim, 768);
  EXPECT_EQ(model_preset("vit-micro").dim, 128);
  EXPECT_NE(error_of([] { model_preset("vit-huge"); }).find("model.preset"), std::string::npos);
}

TEST(Config, UnknownKeyIsNamed) {
  EXPECT_EQ(error_of([] { run_from_json(json{{"model", {{"depht", 3}}}}); }), "model.depht: unknown key");
  EXPECT_EQ(error_of([] { run_from_json(json{{"trian", json::object()}}); }), "trian: unknown key");
  EXPECT_EQ(error_of([] { run_from_json(json{{"train", {{"augment", {{"flop", true}}}}}}); }),
            "train.augment.flop: unknown key");
}

TEST(Config, WrongTypeIsNamed) {
  EXPECT_EQ(error_of([] { run_from_json(json{{"model", {{"depth", "six"}}}}); }),
            "model.depth: expected an integer, got a string \"six\"");
  EXPECT_EQ(error_of([] { run_from_json(json{{"model", {{"depth", 2.5}}}}); }),
            "model.depth: expected an integer, got a number 2.5");
  EXPECT_EQ(error_of([] { run_from_json(json{{"train", {{"lr", true}}}}); }),
            "train.lr: expected a number, got a boolean true");
  EXPECT_EQ(error_of([] { run_from_json(json{{"data", 3}}); }), "data: expected an object, got an integer");
}

TEST(Config, ValidationNamesTheField) {
  RunConfig c;
  c.model.patch_size = 5;
  EXPECT_EQ(error_of([&] { c.validate(); }), "model.patch_size: 5 does not divide model.image_size=28");
  c = RunConfig();
  c.model.heads = 5;
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.heads: 5 does not divide model.dim=128"), std::string::npos);
  c = RunConfig();
  c.model.pool = "max";
  EXPECT_NE(error_of([&] { c.validate(); }).find("model.pool"), std::string::npos);
  c = RunConfig();
  c.train.device = "tpu";
  EXPECT_NE(error_of([&] { c.validate(); }).find("train.device"), std::string::npos);
  c = RunConfig();
  c.train.precision = "fp16";
  EXPECT_NE(error_of([&] { c.validate(); }).find("train.precision: 'fp16' is not one of auto, fp32, bf16"),
            std::string::npos);
  c = RunConfig();
  c.data.hw_decoder_load = 1.5;
  EXPECT_EQ(error_of([&] { c.validate(); }), "data.hw_decoder_load: must be in [0, 1]");
  EXPECT_EQ(error_of([] { RunConfig().validate(); }), "");
}

TEST(Config, OverridesParseJsonOrString) {
  json doc = {{"model", {{"attention", "mha"}}}};
  apply_override(doc, "model.depth=3");
  apply_override(doc, "model.attention.name=gqa");
  apply_override(doc, "model.attention.kv_heads=2");
  apply_override(doc, "train.augment.flip=true");
  apply_override(doc, "model.mean=[0.1]");
  EXPECT_EQ(doc["model"]["depth"], 3);
  EXPECT_EQ(doc["model"]["attention"], (json{{"name", "gqa"}, {"kv_heads", 2}}));
  EXPECT_EQ(doc["train"]["augment"]["flip"], true);
  EXPECT_EQ(doc["model"]["mean"], json::array({0.1}));
  EXPECT_NE(error_of([&] { apply_override(doc, "nodepth"); }).find("expected key.path=value"), std::string::npos);
  // load_run_config validates after the overrides and names the key
  EXPECT_EQ(error_of([] { load_run_config("", {"model.bogus=1"}); }), "--set model.bogus=1: unknown key");
  // ... the flag, not the file it overrides, when the bad value came from --set
  const test::TempDir dir;
  const std::string file = dir / "run.json";
  test::write_file(file, R"({"model": {"dim": 64, "heads": 5}})");
  EXPECT_EQ(error_of([&] { load_run_config(file, {"model.dim=abc"}); }),
            "--set model.dim=abc: expected an integer, got a string \"abc\"");
  // an error in the file's own values still names the file
  EXPECT_EQ(error_of([&] { load_run_config(file, {"model.depth=2"}); }).rfind(file + ": ", 0), 0u);
}
