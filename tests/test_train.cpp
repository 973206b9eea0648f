#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "vitlab/compat.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/train/checkpoint.h"
#include "vitlab/train/ema.h"
#include "vitlab/train/evaluate.h"
#include "vitlab/train/cuda_graph.h"
#include "vitlab/train/optim.h"
#include "vitlab/train/trainer.h"

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::TempDir;

namespace {

// A tiny model on the synthetic task: trains in a few seconds on one core.
RunConfig tiny_run() {
  RunConfig c;
  c.model.image_size = 16, c.model.patch_size = 4, c.model.dim = 32, c.model.depth = 2, c.model.heads = 2;
  c.data.spec = "synthetic";
  c.data.synthetic.image_size = 16, c.data.synthetic.train = 2000, c.data.synthetic.test = 500;
  c.data.val_size = 400;
  c.train.epochs = 6, c.train.batch_size = 32, c.train.lr = 3e-3, c.train.warmup_epochs = 0.5;
  c.train.augment.crop_padding = 0;
  c.train.threads = 1;
  return c;
}

}  // namespace

TEST(Train, TinyModelLearnsAndWritesTheFullRecord) {
  TempDir dir;
  json r = train({tiny_run(), dir / "run", false});
  EXPECT_GE(r["metrics"]["top1"].get<double>(), 95.0);
  // Every field of the vitlab.run/1 schema (DESIGN section 5).
  for (const char* key : {"schema", "run_id", "created", "git_commit", "host", "model", "data", "train", "params",
                          "flops_per_image", "kv_floats_per_token", "metrics", "history", "timing", "checkpoint"})
    EXPECT_TRUE(r.contains(key)) << key;
  EXPECT_EQ(r["schema"], "vitlab.run/1");
  for (const char* key : {"device", "libtorch", "threads"}) EXPECT_TRUE(r["host"].contains(key)) << key;
  for (const char* key : {"total", "attention", "attention_per_layer", "embedding", "mlp", "head"})
    EXPECT_GT(r["params"][key].get<int64_t>(), 0) << key;
  for (const char* key : {"top1", "top5", "loss", "best_top1", "best_epoch"})
    EXPECT_TRUE(r["metrics"][key].is_number()) << key;
  ASSERT_EQ(r["history"].size(), 6u);
  for (const char* key : {"epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "images_per_s", "seconds"})
    EXPECT_TRUE(r["history"][5][key].is_number()) << key;
  for (const char* key : {"train_seconds", "images_per_s", "peak_device_bytes"})
    EXPECT_GT(r["timing"][key].get<double>(), 0) << key;
  EXPECT_EQ(r["data"]["val_size"], 400);
  EXPECT_EQ(r["model"]["dim"], 32);
  EXPECT_EQ(r["train"]["seed"], 0);
  // The file on disk is the same record, and the checkpoint evaluates like the model did.
  EXPECT_EQ(read_json_file(dir / "run/result.json"), r);
  EXPECT_TRUE(vitlab::path_exists(dir / "run/checkpoint/train_state.pt"));
  // Same seed, same result.
  json again = train({tiny_run(), dir / "run2", false});
  EXPECT_EQ(again["metrics"], r["metrics"]);
}

TEST(Train, ExistingRunNeedsResumeAndTheSameConfig) {
  TempDir dir;
  RunConfig c = tiny_run();
  c.train.epochs = 1;
  c.data.synthetic.train = 600;
  train({c, dir / "run", false});
  EXPECT_NE(error_of([&] { train({c, dir / "run", false}); }).find("already holds a run; pass --resume"),
            std::string::npos);
  c.train.lr = 1e-4;
  EXPECT_NE(error_of([&] { train({c, dir / "run", true}); }).find("--resume: train.lr differs"), std::string::npos);
}

TEST(Train, EmaCheckpointPublishesTheEvaluatedWeights) {
  TempDir dir;
  RunConfig c = tiny_run();
  c.train.ema_decay = 0.9;
  c.train.epochs = 2;
  json r = train({c, dir / "run", false});
  // model.safetensors holds the EMA weights, which produced the recorded test metrics.
  // Evaluated on the run's device: kernels differ between devices, not between runs.
  const torch::Device device = resolve_device(c.train.device);
  ViT m = load_model(dir / "run/checkpoint");
  m->to(device);
  Splits data = load_data(c.data);
  EvalResult e = evaluate(m, to_device(data.test, device), 500, uses_bf16(c.train.precision, device));
  EXPECT_EQ(e.top1, r["metrics"]["top1"].get<double>());
  EXPECT_NEAR(e.loss, r["metrics"]["loss"].get<double>(), 1e-6 * e.loss);
}

TEST(Checkpoint, RoundTripsBitForBit) {
  TempDir dir;
  ModelConfig c;
  c.dim = 32, c.depth = 2, c.heads = 4, c.pos = "sincos";
  ViT a(c);
  save_checkpoint(dir / "ck", a, nullptr, nullptr, json::object());
  ViT b = load_model(dir / "ck");
  auto ta = model_tensors(a), tb = model_tensors(b);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].first, tb[i].first);
    EXPECT_TRUE(torch::equal(ta[i].second, tb[i].second)) << ta[i].first;
  }
  // A writer killed mid-save leaves ck2.tmp-<its pid> behind; the next save removes it, and
  // leaves ck2x's temporaries (another checkpoint) alone.
  for (const char* stale : {"ck2.tmp-999999", "ck2x.tmp-999999"}) {
    make_directories(dir / stale);
    vitlab::test::write_file(dir / stale + "/model.safetensors.tmp-999999", "partial");
  }
  save_checkpoint(dir / "ck2", b, nullptr, nullptr, json::object());
  EXPECT_FALSE(vitlab::path_exists(dir / "ck2.tmp-999999"));
  EXPECT_TRUE(vitlab::path_exists(dir / "ck2x.tmp-999999"));
  EXPECT_EQ(read_text(dir / "ck/model.safetensors"), read_text(dir / "ck2/model.safetensors"));
  EXPECT_EQ(read_text(dir / "ck/config.json"), read_text(dir / "ck2/config.json"));
  EXPECT_FALSE(vitlab::path_exists(dir / "ck.old"));
  // Saving over an existing checkpoint replaces it whole and leaves nothing beside it.
  {
    torch::NoGradGuard no_grad;
    a->parameters()[0].add_(1.0);
  }
  save_checkpoint(dir / "ck", a, nullptr, nullptr, json::object());
  EXPECT_TRUE(torch::equal(load_model(dir / "ck")->parameters()[0], a->parameters()[0]));
  EXPECT_EQ(list_directory(dir.path), (std::vector<std::string>{"ck", "ck2", "ck2x.tmp-999999"}));
}

TEST(Checkpoint, MismatchNamesTheTensor) {
  TempDir dir;
  ModelConfig c;
  c.dim = 32, c.depth = 2, c.heads = 4;
  ViT a(c);
  save_checkpoint(dir / "ck", a, nullptr, nullptr, json::object());
  c.depth = 3;
  atomic_write(dir / "ck/config.json", to_json(c).dump());
  EXPECT_EQ(error_of([&] { load_model(dir / "ck"); }),
            dir / "ck/model.safetensors" + ": missing tensor 'blocks.2.norm1.weight' that the model config needs");
  c.depth = 2, c.dim = 64, c.heads = 4;
  atomic_write(dir / "ck/config.json", to_json(c).dump());
  EXPECT_NE(error_of([&] { load_model(dir / "ck"); }).find("tensor 'cls_token' has shape [1, 1, 32]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_model(dir / "nowhere"); }).find("no such checkpoint"), std::string::npos);
}

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  NamedTensors t = {{"f32", torch::randn({3, 4})},
                    {"f16", torch::randn({5}).to(torch::kHalf)},
                    {"bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                    {"f64", torch::randn({1}, torch::kDouble)},
                    {"i64", torch::arange(7)},
                    {"scalar", torch::tensor(3.5f).reshape({})},
                    {"empty", torch::zeros({0, 4})}};
  save_safetensors(dir / "a.safetensors", t, {{"k", "v"}});
  std::map<std::string, std::string> meta;
  auto back = load_safetensors(dir / "a.safetensors", &meta);
  ASSERT_EQ(back.size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(back[i].first, t[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), t[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, t[i].second)) << t[i].first;
  }
  EXPECT_EQ(meta["k"], "v");
}

TEST(Safetensors, CorruptFilesAreNamed) {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", {{"w", torch::randn({4, 4})}, {"b", torch::randn({4})}});
  const std::string good = read_text(dir / "a.safetensors");
  auto with = [&](const std::string& bytes) {
    vitlab::test::write_file(dir / "b.safetensors", bytes);
    return error_of([&] { load_safetensors(dir / "b.safetensors"); });
  };
  const std::string path = dir / "b.safetensors";
  EXPECT_NE(with(good.substr(0, good.size() - 4)).find("outside the"), std::string::npos);  // truncated
  EXPECT_NE(with("abc").find(path + ": not a safetensors file"), std::string::npos);
  std::string huge = good;
  huge[5] = 0x7f;
  EXPECT_NE(with(huge).find("header length"), std::string::npos);
  auto header = [&](const std::string& h) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = char((h.size() >> (8 * i)) & 0xff);
    return s + h + std::string(64, '\0');
  };
  EXPECT_NE(with(header("not json")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(with(header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})")).find("need 8 bytes"),
            std::string::npos);
  EXPECT_NE(with(header(R"({"x":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})")).find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(with(header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"))
                .find("overlap"),
            std::string::npos);
}

TEST(Optim, WarmupThenCosineToMinLr) {
  TrainConfig c;
  c.lr = 1e-3, c.min_lr = 1e-5;
  EXPECT_DOUBLE_EQ(lr_at(0, 100, 10, c), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(9, 100, 10, c), 1e-3);
  EXPECT_DOUBLE_EQ(lr_at(10, 100, 10, c), 1e-3);
  EXPECT_NEAR(lr_at(55, 100, 10, c), (1e-3 + 1e-5) / 2, 1e-12);
  EXPECT_NEAR(lr_at(100, 100, 10, c), 1e-5, 1e-15);
  for (int s = 10; s < 99; ++s) EXPECT_GE(lr_at(s, 100, 10, c), lr_at(s + 1, 100, 10, c));
}

TEST(Optim, NoWeightDecayOnNormsBiasesAndEmbeddings) {
  ModelConfig mc;
  mc.dim = 32, mc.depth = 1, mc.heads = 2;
  mc.dist_token = true, mc.reg_tokens = 2;  // as timm: the distillation token undecayed, registers decayed
  ViT m(mc);
  TrainConfig c;
  c.weight_decay = 0.1;
  auto opt = make_optimizer(m, c);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  auto& decay = opt->param_groups()[0];
  auto& none = opt->param_groups()[1];
  EXPECT_EQ(static_cast<torch::optim::AdamWOptions&>(decay.options()).weight_decay(), 0.1);
  EXPECT_EQ(static_cast<torch::optim::AdamWOptions&>(none.options()).weight_decay(), 0.0);
  for (const auto& p : decay.params())  // matrices, the conv and the register tokens
    EXPECT_EQ(p.dim(), p.is_same(m->reg_token) ? 3 : 2 + (p.dim() == 4 ? 2 : 0));
  EXPECT_TRUE(std::any_of(none.params().begin(), none.params().end(),
                          [&](const torch::Tensor& p) { return p.is_same(m->dist_token); }));
  EXPECT_TRUE(std::any_of(none.params().begin(), none.params().end(),
                          [&](const torch::Tensor& p) { return p.is_same(m->pos_embed); }));
  EXPECT_TRUE(std::any_of(none.params().begin(), none.params().end(),
                          [&](const torch::Tensor& p) { return p.is_same(m->cls_token); }));
}

// The sync-free clipping is torch::nn::utils::clip_grad_norm_'s arithmetic, bit for bit.
TEST(Optim, ClipGradNormEqualsLibTorchs) {
  for (double max_norm : {0.05, 1e6}) {  // clipping, and a norm under the limit (coefficient 1)
    std::vector<torch::Tensor> a, b;
    for (auto shape : {std::vector<int64_t>{7, 5}, {5}, {3, 2, 2}}) {
      auto p = torch::randn(shape).requires_grad_(true);
      p.mutable_grad() = torch::randn(shape);
      auto q = p.detach().clone().requires_grad_(true);
      q.mutable_grad() = p.grad().clone();
      a.push_back(p), b.push_back(q);
    }
    clip_grad_norm(a, max_norm);
    torch::nn::utils::clip_grad_norm_(b, max_norm);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].grad(), b[i].grad())) << max_norm;
  }
}

// On a GPU (LibTorch >= 2.4) the step runs the fused kernel: the same update as LibTorch's own
// AdamW, and the same integer step in the state, so checkpoints do not depend on the path.
TEST(Optim, FusedAdamWMatchesThePlainStep) {
  if (!compat::kHasFusedAdamW || !torch::cuda::is_available())
    GTEST_SKIP() << "the fused AdamW path needs LibTorch >= 2.4 and a CUDA device";
  ModelConfig mc;
  mc.dim = 32, mc.depth = 2, mc.heads = 2;
  TrainConfig c;
  c.weight_decay = 0.1;
  ViT a(mc), b(mc);
  a->to(torch::kCUDA), b->to(torch::kCUDA);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  auto fused = make_optimizer(a, c), plain = make_optimizer(b, c);
  for (int step = 0; step < 4; ++step) {
    set_lr(*fused, 1e-2 / (step + 1)), set_lr(*plain, 1e-2 / (step + 1));
    for (size_t i = 0; i < a->parameters().size(); ++i) {
      auto g = torch::randn_like(a->parameters()[i]);
      a->parameters()[i].mutable_grad() = g.clone();
      b->parameters()[i].mutable_grad() = g.clone();
    }
    fused->step();
    plain->torch::optim::AdamW::step();  // LibTorch's per-tensor loop
  }
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    const torch::Tensor p = a->parameters()[i], q = b->parameters()[i];  // parameters() is a temporary
    EXPECT_LT(((p - q).norm() / q.norm()).item<double>(), 1e-6) << i;
    auto& sa = static_cast<torch::optim::AdamWParamState&>(
        *fused->state().at(compat::optimizer_state_key(fused->state(), p)));
    auto& sb = static_cast<torch::optim::AdamWParamState&>(
        *plain->state().at(compat::optimizer_state_key(plain->state(), q)));
    EXPECT_EQ(sa.step(), 4);
    EXPECT_EQ(sb.step(), 4);
    // The kernel forms 1 - beta2 in float (0.00099998713 for 0.999), LibTorch's loop in double:
    // the second moments differ by 1.3e-5 relative, by construction, not by rounding.
    EXPECT_LT(((sa.exp_avg_sq() - sb.exp_avg_sq()).norm() / sb.exp_avg_sq().norm()).item<double>(), 5e-5) << i;
    EXPECT_LT(((sa.exp_avg() - sb.exp_avg()).norm() / sb.exp_avg().norm()).item<double>(), 1e-6) << i;
  }
}

// The graphed step (train/cuda_graph.h) replays what train_step does: eight steps of a small
// ViT with augmentation, drop-path, clipping, EMA and a changing learning rate end with the
// same weights, moments, EMA and step counts either way, reseeded before every step as the
// trainer does; then the graphed forward against the plain one. In float32 without TF32, so any
// difference is a wrong replay, not rounding.
TEST(CudaGraph, ReplayedStepsEqualPlainSteps) {
  RunConfig cfg;
  cfg.model.image_size = 16, cfg.model.patch_size = 4, cfg.model.in_chans = 1, cfg.model.num_classes = 5;
  cfg.model.dim = 32, cfg.model.depth = 2, cfg.model.heads = 2, cfg.model.drop_path = 0.1;
  cfg.model.mean = {0.5}, cfg.model.std = {0.25};
  cfg.train.precision = "fp32", cfg.train.tf32 = false, cfg.train.grad_clip = 0.5, cfg.train.ema_decay = 0.9;
  cfg.train.augment.crop_padding = 2, cfg.train.augment.flip = true;
  const std::string why = torch::cuda::is_available() ? cuda_graph_unsupported(cfg, torch::kCUDA, nullptr)
                                                      : std::string("needs a CUDA device");
  if (!why.empty()) GTEST_SKIP() << why;
  configure_tf32(false);
  torch::manual_seed(0);
  ViT a(cfg.model), b(cfg.model);
  a->to(torch::kCUDA), b->to(torch::kCUDA);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  a->train(), b->train();
  auto opt_a = make_optimizer(a, cfg.train), opt_b = make_optimizer(b, cfg.train);
  Ema ema_a(a, cfg.train.ema_decay), ema_b(b, cfg.train.ema_decay);
  GraphedTrainStep graphed(b, *opt_b, &ema_b, cfg);
  const int steps = GraphedTrainStep::kWarmupSteps + 5;  // plain, capture, replays
  const auto u8 = torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA);
  for (int step = 0; step < steps; ++step) {
    const auto images = torch::randint(0, 256, {32, 1, 16, 16}, u8);
    const auto labels = torch::randint(0, 5, {32}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    const double lr = 1e-3 * (step + 1);
    torch::manual_seed(100 + step);
    set_lr(*opt_a, lr);
    const double loss_a = train_step(a, *opt_a, &ema_a, images, labels, cfg).loss.item<double>();
    torch::manual_seed(100 + step);
    const double loss_b = graphed(images, labels, lr).loss.item<double>();
    EXPECT_NEAR(loss_a, loss_b, 1e-6 * std::abs(loss_a)) << "step " << step;
  }
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    const torch::Tensor p = a->parameters()[i], q = b->parameters()[i];
    EXPECT_LT(((p - q).norm() / q.norm()).item<double>(), 1e-6) << i;
    EXPECT_LT(((ema_a.tensors()[i] - ema_b.tensors()[i]).norm() / ema_a.tensors()[i].norm()).item<double>(), 1e-6) << i;
    auto& sa = static_cast<torch::optim::AdamWParamState&>(*opt_a->state().at(compat::optimizer_state_key(opt_a->state(), p)));
    auto& sb = static_cast<torch::optim::AdamWParamState&>(*opt_b->state().at(compat::optimizer_state_key(opt_b->state(), q)));
    EXPECT_EQ(sa.step(), steps);
    EXPECT_EQ(sb.step(), steps);
    EXPECT_LT(((sa.exp_avg_sq() - sb.exp_avg_sq()).norm() / sa.exp_avg_sq().norm()).item<double>(), 1e-6) << i;
  }
  // The graphed forward: plain, captured, replayed, and a batch of another shape run plainly.
  a->eval();
  GraphedForward forward(a, /*bf16=*/false);
  for (int64_t batch : {16, 16, 16, 16, 5}) {
    const auto images = torch::randint(0, 256, {batch, 1, 16, 16}, u8);
    torch::NoGradGuard no_grad;
    const auto expected = a->forward(preprocess(images, cfg.model));
    EXPECT_TRUE(torch::allclose(forward(images), expected, 1e-6, 1e-6)) << batch;
  }
}

// Evaluation through the run's one graph (evaluate.h): the same metrics as plain evaluation,
// and every evaluation after the capture replays in the memory the allocator already holds (a
// graph per evaluation took a new pool each time: 79 GB by epoch 75 of a d 384 run).
TEST(CudaGraph, EvaluationsReplayOneGraphInTheSameMemory) {
  RunConfig c = tiny_run();
  c.train.precision = "fp32", c.train.tf32 = false;
  const std::string why = torch::cuda::is_available() ? cuda_graph_unsupported(c, torch::kCUDA, nullptr)
                                                      : std::string("needs a CUDA device");
  if (!why.empty()) GTEST_SKIP() << why;
  configure_tf32(false);
  torch::manual_seed(0);
  const torch::Device cuda(torch::kCUDA, 0);
  ViT m(c.model);
  m->to(cuda);
  const Dataset test = to_device(load_data(c.data).test, cuda);  // 500 images: 3 batches of 128 + 1 of 116
  const EvalResult plain = evaluate(m, test, 128, false);
  GraphedForward graphed(m, false);
  std::vector<int64_t> reserved;
  for (int i = 0; i < 4; ++i) {
    const EvalResult r = evaluate(m, test, 128, false, &graphed);
    EXPECT_EQ(r.top1, plain.top1) << i;
    EXPECT_NEAR(r.loss, plain.loss, 1e-6 * plain.loss) << i;
    EXPECT_TRUE(torch::equal(r.confusion, plain.confusion)) << i;
    reserved.push_back(peak_reserved_bytes(cuda));
  }
  EXPECT_GT(reserved[0], 0);
  EXPECT_EQ(reserved[3], reserved[1]);  // captured in the first evaluation, replayed since
}

TEST(Ema, IsAnExponentialMovingAverage) {
  ModelConfig mc;
  mc.dim = 16, mc.depth = 1, mc.heads = 2;
  ViT m(mc);
  auto p0 = m->parameters()[0].detach().clone();
  Ema ema(m, 0.9);
  torch::NoGradGuard no_grad;
  m->parameters()[0].add_(1.0);
  ema.update(m);
  EXPECT_TRUE(torch::allclose(ema.tensors()[0], p0 + 0.1));
  ViT other(mc);
  ema.copy_to(other);
  EXPECT_TRUE(torch::equal(other->parameters()[0], ema.tensors()[0]));
}
