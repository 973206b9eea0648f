// RandAugment / TrivialAugment / ColorJitter (data/auto_augment.h): every op against PIL's
// output (tests/fixtures/auto_augment, made by timm's and torchvision's op functions), the
// policies' draws, the batched application against one image at a time, and CPU against CUDA.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "vitlab/config.h"
#include "vitlab/data/auto_augment.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

using namespace vitlab;
using nlohmann::json;

namespace {

const std::string kDir = std::string(VITLAB_FIXTURES) + "/auto_augment/";

torch::Tensor bytes_tensor(const std::string& s, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<char*>(s.data()), shape, torch::kUInt8).clone();
}

// A fixture source as (1, C, H, W); 1 channel is PIL's convert("L").
torch::Tensor source(const std::string& name, int channels, int h, int w) {
  auto rgb = bytes_tensor(read_text(kDir + "source_" + name + ".u8"), {h, w, 3}).permute({2, 0, 1}).unsqueeze(0);
  if (channels == 3) return rgb.contiguous();
  auto v = rgb.to(torch::kInt);
  auto l24 = v.narrow(1, 0, 1) * 19595 + v.narrow(1, 1, 1) * 38470 + v.narrow(1, 2, 1) * 7471 + 0x8000;
  return l24.div(65536, "floor").to(torch::kUInt8);  // PIL's L24
}

AugmentPolicy policy(const std::string& aa, std::vector<double> jitter = {}) {
  AugmentConfig a;
  a.auto_augment = aa;
  a.color_jitter = std::move(jitter);
  ModelConfig m;
  m.in_chans = 3;
  m.mean = {0.485, 0.456, 0.406};
  return augment_policy(a, m);
}

}  // namespace

TEST(AutoAugment, EveryOpMatchesPil) {
  const json j = json::parse(read_text(kDir + "cases.json"));
  const std::string out = read_text(kDir + "outputs.u8");
  const int h = j["height"], w = j["width"];
  int64_t pixels = 0, off_by_one = 0;
  for (const auto& c : j["cases"]) {
    const int C = c["channels"];
    auto x = source(c["source"], C, h, w);
    Resample r{c["filter"], c["fill"].get<std::vector<double>>()};
    auto got = apply_pil_op(x, pil_op(c["op"]), {c["arg"].get<double>()}, r);  // (1, C, H, W)
    auto want = bytes_tensor(out.substr(c["offset"].get<size_t>(), static_cast<size_t>(h) * w * C), {h, w, C})
                    .permute({2, 0, 1}).unsqueeze(0);
    auto diff = (got.to(torch::kInt) - want.to(torch::kInt)).abs();
    const std::string what = c["op"].get<std::string>() + "(" + std::to_string(c["arg"].get<double>()) + ", " +
                             c["filter"].get<std::string>() + ") on " + c["source"].get<std::string>() + " C=" +
                             std::to_string(C) + " [" + c["made_by"].get<std::string>() + "]";
    ASSERT_LE(diff.max().item<int>(), 1) << what;
    pixels += diff.numel();
    off_by_one += diff.gt(0).sum().item<int64_t>();
  }
  EXPECT_EQ(j["cases"].size(), 216u);
  // Most pixels are exact: a difference of one is float rounding, not a different formula.
  EXPECT_LT(static_cast<double>(off_by_one) / pixels, 1e-3) << off_by_one << " of " << pixels << " pixels";
}

TEST(AutoAugment, ParsesTimmStrings) {
  auto p = policy("rand-m9-mstd0.5-inc1");
  EXPECT_EQ(p.kind, "rand");
  EXPECT_EQ(p.magnitude, 9);
  EXPECT_EQ(p.magnitude_std, 0.5);
  EXPECT_EQ(p.layers, 2);
  EXPECT_EQ(p.ops.size(), 15u);
  EXPECT_EQ(p.ops[4], "PosterizeIncreasing");
  EXPECT_EQ(p.resample.filter, "bilinear");
  EXPECT_EQ(p.resample.fill, (std::vector<double>{124, 116, 104}));  // timm's img_mean
  auto q = policy("rand-n3-m7-mstd101-mmax20-p0.8-w0");
  EXPECT_EQ(q.layers, 3);
  EXPECT_TRUE(std::isinf(q.magnitude_std));
  EXPECT_EQ(q.magnitude_max, 20);
  EXPECT_EQ(q.prob, 0.8);
  EXPECT_EQ(q.ops[4], "Posterize");
  EXPECT_EQ(q.weights[3], 0.3);  // Rotate
  auto t = policy("trivial");
  EXPECT_EQ(t.resample.filter, "nearest");
  EXPECT_EQ(policy("", {0.4}).jitter, (std::vector<double>{0.4, 0.4, 0.4}));
  for (const std::string bad : {"rand-q9", "rand-m", "augmix-m3", "rand-m9x", "rand-w1", "rand-n0"}) {
    try {
      policy(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("train.augment.auto_augment"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(policy("", {0.4, 0.4, 0.4, 0.1}), Error);  // hue
  EXPECT_THROW(policy("", {0.4, 0.4}), Error);
}

TEST(AutoAugment, RandDrawsTimmsArguments) {
  // rand-m9-mstd0-inc1: every op's argument is one of timm's LEVEL_TO_ARG values at 9.
  auto p = policy("rand-m9-inc1");
  const int h = 20, w = 30;
  std::map<PilOp, std::set<double>> want{
      {PilOp::AutoContrast, {0}}, {PilOp::Equalize, {0}}, {PilOp::Invert, {0}}, {PilOp::Rotate, {27, -27}},
      {PilOp::Posterize, {1}},    // 4 - int(3.6)
      {PilOp::Solarize, {26}},    // 256 - int(230.4)
      {PilOp::SolarizeAdd, {99}}, {PilOp::ShearX, {0.27, -0.27}}, {PilOp::ShearY, {0.27, -0.27}},
      {PilOp::TranslateX, {0.405 * w, -0.405 * w}}, {PilOp::TranslateY, {0.405 * h, -0.405 * h}}};
  for (PilOp e : {PilOp::Color, PilOp::Contrast, PilOp::Brightness, PilOp::Sharpness}) want[e] = {1.81, 0.19};
  std::mt19937_64 rng(3);
  std::map<PilOp, int> seen;
  int64_t ops = 0;
  const int images = 6000;
  for (int i = 0; i < images; ++i) {
    auto d = draw_ops(p, h, w, rng);
    ASSERT_LE(d.size(), 2u);
    ops += static_cast<int64_t>(d.size());
    for (const auto& c : d) {
      ++seen[c.op];
      bool found = false;
      for (double v : want.at(c.op)) found |= std::abs(v - c.arg) < 1e-9;
      EXPECT_TRUE(found) << static_cast<int>(c.op) << " " << c.arg;
    }
  }
  EXPECT_EQ(seen.size(), 15u);
  EXPECT_NEAR(static_cast<double>(ops) / images, 1.0, 0.05);  // 2 layers, each applied with p 0.5
}

TEST(AutoAugment, TrivialAndJitterDraws) {
  auto p = policy("trivial", {0.4});
  std::mt19937_64 rng(5);
  int64_t trivial = 0, identity = 0;
  const int images = 7000;
  for (int i = 0; i < images; ++i) {
    auto d = draw_ops(p, 32, 32, rng);
    ASSERT_GE(d.size(), 3u);
    ASSERT_LE(d.size(), 4u);
    identity += d.size() == 3;
    trivial += static_cast<int64_t>(d.size()) - 3;
    std::set<PilOp> jitter;
    for (size_t k = d.size() - 3; k < d.size(); ++k) {
      jitter.insert(d[k].op);
      EXPECT_GE(d[k].arg, 0.6);
      EXPECT_LE(d[k].arg, 1.4);
    }
    EXPECT_EQ(jitter, (std::set<PilOp>{PilOp::Brightness, PilOp::Contrast, PilOp::Color}));
    if (d.size() == 4) {
      const auto& c = d[0];
      if (c.op == PilOp::Rotate) EXPECT_LE(std::abs(c.arg), 135.0);
      if (c.op == PilOp::TranslateX || c.op == PilOp::TranslateY) EXPECT_EQ(c.arg, std::trunc(c.arg));
      if (c.op == PilOp::Posterize) EXPECT_TRUE(c.arg >= 2 && c.arg <= 8);
      if (c.op == PilOp::Brightness) EXPECT_TRUE(c.arg > 0.0099 && c.arg < 1.9901);
    }
  }
  EXPECT_NEAR(static_cast<double>(identity) / images, 1.0 / 14, 0.015);
}

TEST(AutoAugment, BatchedEqualsOneImageAtATime) {
  torch::manual_seed(0);
  auto x = torch::randint(256, {12, 3, 24, 20}, torch::kUInt8);
  for (const std::string aa : {"rand-m9-mstd0.5-inc1", "trivial"}) {
    auto p = policy(aa, {0.4});
    std::mt19937_64 a(42), b(42);
    auto batched = auto_augment(x, p, a);
    for (int64_t i = 0; i < x.size(0); ++i) {
      auto img = x.narrow(0, i, 1);
      for (const auto& c : draw_ops(p, 24, 20, b)) img = apply_pil_op(img, c.op, {c.arg}, p.resample);
      ASSERT_TRUE(torch::equal(batched.narrow(0, i, 1), img)) << aa << " image " << i;
    }
    EXPECT_FALSE(torch::equal(batched, x));
  }
}

TEST(AutoAugment, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(1);
  auto x = torch::randint(256, {64, 3, 40, 36}, torch::kUInt8);
  for (const std::string aa : {"rand-m9-mstd0.5-inc1", "trivial"}) {
    auto p = policy(aa, {0.4});
    std::mt19937_64 a(7), b(7);
    auto cpu = auto_augment(x, p, a);
    auto gpu = auto_augment(x.cuda(), p, b).cpu();
    EXPECT_LE((cpu.to(torch::kInt) - gpu.to(torch::kInt)).abs().max().item<int>(), 1) << aa;
  }
}
