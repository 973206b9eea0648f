// Hugging Face transformers checkpoints (io/hf.h): the committed fixtures, made by
// experiments/hf_parity/make_fixtures.py through transformers itself from random weights, load
// through load_model with logits equal to transformers'; the image processor's resize and crop
// give its pixels; what vitlab cannot hold is one error naming the file and key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "test_util.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/io/files.h"
#include "vitlab/io/hf.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/train/checkpoint.h"

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::TempDir;
using vitlab::test::write_file;

using vitlab::test::expected_of;
using vitlab::test::fixture_dirs;
using vitlab::test::relative_error;

namespace {

// The committed tiny set; $VITLAB_HF_PARITY_DIR adds more (the large set, on the GPU machine:
// experiments/hf_parity/run.sh).
std::vector<std::string> hf_fixtures() {
  auto dirs = fixture_dirs(std::string(VITLAB_FIXTURES) + "/hf");
  if (const char* extra = std::getenv("VITLAB_HF_PARITY_DIR"))
    for (const auto& d : fixture_dirs(extra)) dirs.push_back(d);
  return dirs;
}

}  // namespace

// ViT (3 and 1 channels, with and without q/k/v biases), DeiT with its distillation token and
// class head, DeiT with teacher (both heads averaged); f32, bf16 and f16 weights; transformers'
// LayerNorm eps 1e-12 and its id2label names.
TEST(HfParity, LogitsMatchTransformers) {
  const auto dirs = hf_fixtures();
  ASSERT_GE(dirs.size(), 4u) << "the committed fixtures are missing from " << VITLAB_FIXTURES << "/hf";
  std::set<std::string> archs;
  for (const auto& dir : dirs) {
    const json cfg = read_json_file(join_path(dir, "config.json"));
    archs.insert(cfg["architectures"][0].get<std::string>());
    const auto e = expected_of(dir);
    ViT model = load_model(dir);
    model->eval();
    EXPECT_EQ(model->cfg.norm_eps, cfg.value("layer_norm_eps", 1e-12)) << dir;
    EXPECT_EQ(model->cfg.label_names.at(1), "class_1") << dir;
    torch::NoGradGuard no_grad;
    // transformers' inputs are already normalised: vitlab's forward takes them as they are.
    EXPECT_LE(relative_error(model->forward(e.at("inputs")), e.at("logits")), 1e-4) << dir << " float32";
    model->to(torch::kDouble);
    EXPECT_LE(relative_error(model->forward(e.at("inputs").to(torch::kDouble)), e.at("logits")), 1e-9)
        << dir << " float64";
  }
  EXPECT_EQ(archs, (std::set<std::string>{"ViTForImageClassification", "DeiTForImageClassification",
                                          "DeiTForImageClassificationWithTeacher"}));
}

#ifdef VITLAB_HAVE_OPENCV
// The processor's resize and centre crop (ViT: the whole image to the model's size; DeiT: both
// sides to `size`, then `crop_size` from the centre), PIL's filters, grey or RGB, as a folder of
// the fixture's images streams them. vitlab computes what Debian's Pillow 9.4 computes; the
// fixtures come from transformers 5.17 with a newer Pillow, which rounds a few pixels otherwise:
// 0-1.6% of the pixels differ, by one grey level but one pixel by two (measured with Pillow 9.4
// in Python against the same fixtures).
TEST(HfParity, ImageProcessorPixels) {
  int checked = 0;
  for (const auto& dir : hf_fixtures()) {
    if (!is_directory(join_path(dir, "images"))) continue;
    const torch::Tensor pixels = expected_of(dir).at("pixels");
    const ModelConfig m = read_checkpoint_config(dir);
    DataConfig dc;
    dc.spec = "folder:" + join_path(dir, "images");
    dc.val_size = 0;
    dc.image_size = m.image_size;
    dc.channels = m.in_chans;
    apply_hf_eval_transform(hf_preprocessor(dir), m, "preprocessor_config.json", dc);
    const Dataset test = decode_all(load_data(dc).test);
    ASSERT_EQ(test.images.sizes(), pixels.sizes()) << dir;
    const auto diff = (test.images.to(torch::kInt) - pixels.to(torch::kInt)).abs();
    EXPECT_LE(diff.max().item<int>(), 2) << dir;
    EXPECT_LE(diff.gt(0).to(torch::kDouble).mean().item<double>(), 0.02) << dir;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}
#endif

// The processor settings as data settings: exact resize sizes through crop_pct, squash for
// {height, width}, centre for {shortest_edge}; the model's normalisation from image_mean / std.
TEST(Hf, PreprocessorBecomesTheEvalTransform) {
  ModelConfig m;
  m.image_size = 224, m.patch_size = 16, m.in_chans = 3;
  DataConfig d;
  const json deit{{"do_center_crop", true}, {"size", {{"height", 256}, {"width", 256}}},
                  {"crop_size", {{"height", 224}, {"width", 224}}}, {"resample", 3}};
  apply_hf_eval_transform(deit, m, "p.json", d);
  EXPECT_EQ(d.crop_mode, "squash");
  EXPECT_EQ(d.interpolation, "bicubic");
  // Every resize side comes out exact, also where size / (crop / side) rounds below the side.
  for (int side = 225; side < 400; ++side) {
    json p = deit;
    p["size"] = {{"height", side}, {"width", side}};
    apply_hf_eval_transform(p, m, "p.json", d);
    ASSERT_EQ(static_cast<int>(std::floor(224 / d.crop_pct)), side);
  }
  apply_hf_eval_transform({{"size", {{"shortest_edge", 256}}}, {"do_center_crop", true}}, m, "p.json", d);
  EXPECT_EQ(d.crop_mode, "center");
  apply_hf_eval_transform({{"size", {{"height", 224}, {"width", 224}}}}, m, "p.json", d);
  EXPECT_EQ(d.crop_pct, 0.0);  // the whole image
  apply_hf_eval_transform(json(), m, "p.json", d);  // no preprocessor_config.json: ViT's defaults
  EXPECT_EQ(d.crop_pct, 0.0);
  EXPECT_EQ(d.interpolation, "bilinear");
  EXPECT_NE(error_of([&] { apply_hf_eval_transform({{"size", {{"height", 384}, {"width", 384}}}}, m, "p.json", d); })
                .find("p.json: the processor makes 384 x 384 images; the model takes 224 x 224"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_hf_eval_transform({{"resample", 1}}, m, "p.json", d); }).find("p.json: resample: 1 is not supported"),
            std::string::npos);
  const json cfg{{"model_type", "vit"}, {"hidden_size", 64}, {"num_attention_heads", 4}, {"intermediate_size", 256},
                 {"image_size", 32}, {"patch_size", 8}};
  EXPECT_EQ(model_from_hf_config(cfg, json(), "c.json").mean, (std::vector<double>{0.5, 0.5, 0.5}));
  const ModelConfig plain = model_from_hf_config(cfg, {{"image_mean", {0.1, 0.2, 0.3}}, {"image_std", {1, 2, 3}}}, "c.json");
  EXPECT_EQ(plain.mean, (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_EQ(plain.mlp_ratio, 4.0);
  EXPECT_EQ(plain.num_classes, 2);  // transformers' default num_labels
}

// Bad input: another model type or architecture, an activation vitlab lacks, a tensor that is
// not part of the model, a missing one: one error naming the file and the key.
TEST(Hf, WhatVitlabCannotHoldIsNamed) {
  const json vit{{"model_type", "vit"}, {"architectures", {"ViTForImageClassification"}}, {"hidden_size", 32},
                 {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"intermediate_size", 64}, {"image_size", 16},
                 {"patch_size", 8}, {"id2label", {{"0", "a"}, {"1", "b"}}}};
  auto error = [&](json j) { return error_of([&] { model_from_hf_config(j, json(), "dir/config.json"); }); };
  json j = vit;
  j["model_type"] = "swin";
  EXPECT_EQ(error(j), "dir/config.json: model_type 'swin' is not a ViT vitlab reads (vit, deit)");
  j = vit;
  j["architectures"] = {"ViTForMaskedImageModeling"};
  EXPECT_NE(error(j).find("architectures: 'ViTForMaskedImageModeling'"), std::string::npos);
  j = vit;
  j["hidden_act"] = "relu";
  EXPECT_EQ(error(j), "dir/config.json: hidden_act: 'relu' is not supported (gelu, gelu_pytorch_tanh, gelu_new)");
  // transformers' two names of GELU's tanh approximation.
  for (const char* act : {"gelu_pytorch_tanh", "gelu_new"}) {
    j["hidden_act"] = act;
    EXPECT_EQ(model_from_hf_config(j, json(), "config.json").mlp, "gelu_tanh") << act;
  }
  EXPECT_EQ(model_from_hf_config(vit, json(), "config.json").mlp, "gelu");
  j = vit;
  j["id2label"] = {{"0", "a"}, {"2", "b"}};
  EXPECT_NE(error(j).find("id2label: '2'"), std::string::npos);

  // A directory whose weights do not fit its config.
  const ModelConfig c = model_from_hf_config(vit, json(), "config.json");
  ViT model(c);
  std::map<std::string, torch::Tensor> hf{{"vit.embeddings.cls_token", torch::zeros({1, 1, 32})},
                                          {"vit.embeddings.mask_token", torch::zeros({1, 1, 32})}};
  EXPECT_NE(error_of([&] { tensors_from_hf(hf, c, "m.safetensors"); })
                .find("m.safetensors: tensor 'vit.embeddings.mask_token' is not part of a transformers vit classifier"),
            std::string::npos);
  hf.erase("vit.embeddings.mask_token");
  hf["vit.pooler.dense.weight"] = torch::zeros({32, 32});  // dropped, as transformers' classifiers drop it
  EXPECT_NE(error_of([&] { tensors_from_hf(hf, c, "m.safetensors"); })
                .find("missing tensor 'vit.encoder.layer.0.attention.attention.query.weight'"),
            std::string::npos);
  TempDir dir;
  write_file(dir / "config.json", vit.dump());
  save_safetensors(dir / "model.safetensors", {{"vit.embeddings.cls_token", torch::zeros({1, 1, 32})}});
  EXPECT_NE(error_of([&] { load_model(dir.path); }).find("model.safetensors: missing tensor"), std::string::npos);
}

#ifdef VITLAB_HAVE_OPENCV
// vit_eval --predictions on a transformers checkpoint and a folder named by its classes: every
// image's row in the folder's order, its label by name, the top classes with the probabilities
// the model gives the images vitlab's transform makes (checked here in-process), CSV and JSON
// agreeing, and the top-1 column agreeing with the reported accuracy.
TEST(HfParity, EvalWritesEveryImagesPrediction) {
  const std::string ck = std::string(VITLAB_FIXTURES) + "/hf/deit_teacher_f32";
  TempDir dir;
  const char* where[] = {"class_0/a.png", "class_3/b.png", "class_3/c.png"};
  for (int i = 0; i < 3; ++i) {
    make_directories(parent_path(dir / where[i]));
    write_file(dir / where[i], read_text(join_path(ck, "images/x/" + std::to_string(i) + ".png")));
  }
  const std::string eval = std::string(VIT_EVAL) + " --checkpoint " + ck + " --data folder:" + dir.path +
                           " --device cpu --topk 2 --out " + dir / "e.json --predictions ";
  auto out = vitlab::test::run(eval + dir / "p.csv");
  ASSERT_EQ(out.status, 0) << out.text;
  ASSERT_EQ(vitlab::test::run(eval + dir / "p.json").status, 0);
  std::vector<std::vector<std::string>> rows;
  std::istringstream csv(read_text(dir / "p.csv"));
  for (std::string line; std::getline(csv, line);) {
    rows.emplace_back();
    std::istringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) rows.back().push_back(f);
  }
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"image", "label", "label_name", "class_1", "name_1", "prob_1", "class_2",
                                               "name_2", "prob_2"}));
  // The model's own answer on vitlab's transform of the same folder.
  const ModelConfig m = read_checkpoint_config(ck);
  DataConfig dc;
  dc.spec = "folder:" + dir.path, dc.val_size = 0, dc.image_size = m.image_size;
  apply_hf_eval_transform(hf_preprocessor(ck), m, "preprocessor_config.json", dc);
  Splits s = load_data(dc, &m);
  ViT model = load_model(ck);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto probs = torch::softmax(model->forward(preprocess(decode_all(s.test).images, m)), 1);  // (3, 5)
  const json js = read_json_file(dir / "p.json");
  int hits = 0;
  for (int i = 0; i < 3; ++i) {
    const auto& r = rows[i + 1];
    EXPECT_EQ(r[0], dir / where[i]);
    EXPECT_EQ(r[2], i == 0 ? "class_0" : "class_3");
    EXPECT_EQ(std::stoi(r[1]), i == 0 ? 0 : 3);
    const auto [p, c] = probs[i].topk(2);
    for (int j = 0; j < 2; ++j) {
      EXPECT_EQ(std::stoi(r[3 + 3 * j]), c[j].item<int64_t>());
      EXPECT_EQ(r[4 + 3 * j], "class_" + r[3 + 3 * j]);
      EXPECT_NEAR(std::stod(r[5 + 3 * j]), p[j].item<double>(), 1e-5);
      EXPECT_EQ(js[i]["top"][j]["class"], c[j].item<int64_t>());
    }
    EXPECT_EQ(js[i]["image"], r[0]);
    hits += r[3] == r[1];
  }
  EXPECT_NEAR(read_json_file(dir / "e.json")["metrics"]["top1"].get<double>(), 100.0 * hits / 3, 1e-9);
}
#endif

// vit_convert --to hf: vitlab's MHA models (a distilled one as DeiT with teacher) go out under
// transformers' names and come back through the transformers loader as the same function; the
// files have the keys and config fields transformers itself writes for that model (the committed
// fixture of the same shape); what transformers cannot hold is refused by name.
TEST(Hf, ExportRoundTrips) {
  for (const char* fixture : {"vit_f32", "deit_teacher_f32"}) {
    const std::string fx = std::string(VITLAB_FIXTURES) + "/hf/" + fixture;
    ModelConfig c = read_checkpoint_config(fx);
    ViT src(c);
    src->eval();
    TempDir dir;
    save_hf_checkpoint(dir / "out", src);
    std::set<std::string> ours, theirs;
    for (const auto& [name, t] : load_safetensors(dir / "out/model.safetensors")) ours.insert(name);
    for (const auto& [name, t] : load_safetensors(join_path(fx, "model.safetensors"))) theirs.insert(name);
    EXPECT_EQ(ours, theirs) << fixture;
    const json written = read_json_file(dir / "out/config.json"), made = read_json_file(join_path(fx, "config.json"));
    for (const char* key : {"architectures", "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "image_size", "patch_size", "num_channels", "qkv_bias", "id2label",
                            "layer_norm_eps"})
      EXPECT_EQ(written[key], made[key]) << fixture << " " << key;
    ViT back = load_model(dir / "out");
    back->eval();
    torch::NoGradGuard no_grad;
    auto x = torch::randn({2, c.in_chans, c.image_size, c.image_size});
    EXPECT_TRUE(torch::equal(back->forward(x), src->forward(x))) << fixture;
    EXPECT_EQ(back->cfg.mean, c.mean);
  }
  ModelConfig c;
  c.pool = "mean";
  EXPECT_NE(error_of([&] { hf_config_from_model(c); }).find("model.pool"), std::string::npos);
  c = ModelConfig{};
  c.attention = {"gqa", json{{"kv_heads", 1}}};
  EXPECT_NE(error_of([&] { hf_config_from_model(c); }).find("model.attention"), std::string::npos);
  c = ModelConfig{};
  c.mlp = "swiglu";
  EXPECT_NE(error_of([&] { hf_config_from_model(c); }).find("model.mlp"), std::string::npos);
  c.mlp = "gelu_tanh";
  EXPECT_EQ(hf_config_from_model(c)["hidden_act"], "gelu_pytorch_tanh");
  EXPECT_EQ(model_from_hf_config(hf_config_from_model(c), json(), "config.json").mlp, "gelu_tanh");
  c.mlp = "gelu", c.num_classes = 0;
  EXPECT_NE(error_of([&] { hf_config_from_model(c); }).find("model.num_classes"), std::string::npos);
}

#ifdef VITLAB_HAVE_OPENCV
// A folder of plain images (no class folders): vit_eval --predictions answers every image with
// no label and scores nothing; without --predictions it says what to do, in one line.
TEST(HfParity, PlainImageFolderIsPredictedOnly) {
  const std::string ck = std::string(VITLAB_FIXTURES) + "/hf/vit_f32";
  TempDir dir;
  for (int i = 0; i < 3; ++i)
    write_file(dir / ("img" + std::to_string(i) + ".png"), read_text(join_path(ck, "images/x/" + std::to_string(i) + ".png")));
  write_file(dir / "notes.txt", "not an image");
  const std::string eval = std::string(VIT_EVAL) + " --checkpoint " + ck + " --data folder:" + dir.path + " --device cpu";
  auto out = vitlab::test::run(eval + " --predictions " + dir / "p.json --out " + dir / "e.json");
  ASSERT_EQ(out.status, 0) << out.text;
  const json p = read_json_file(dir / "p.json"), e = read_json_file(dir / "e.json");
  ASSERT_EQ(p.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(p[i]["image"], dir / ("img" + std::to_string(i) + ".png"));
    EXPECT_TRUE(p[i]["label"].is_null());
    EXPECT_EQ(p[i]["top"].size(), 4u);  // --topk 5 capped at the model's 4 classes
    double sum = 0;
    for (const auto& t : p[i]["top"]) sum += t["prob"].get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_TRUE(e["data"]["unlabelled"].get<bool>());
  EXPECT_FALSE(e["metrics"].contains("top1"));
  vitlab::test::expect_one_line_error(vitlab::test::run(eval), "vit_eval", "no labels to score; --predictions FILE");
}
#endif
