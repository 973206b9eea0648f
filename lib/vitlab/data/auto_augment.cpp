#include "vitlab/data/auto_augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>

#include "vitlab/data/async_copy.h"
#include "vitlab/error.h"

namespace vitlab {

namespace {

constexpr double kPi = 3.14159265358979323846;

const std::map<std::string, PilOp>& op_names() {
  static const std::map<std::string, PilOp> m{
      {"AutoContrast", PilOp::AutoContrast}, {"Equalize", PilOp::Equalize}, {"Invert", PilOp::Invert},
      {"Rotate", PilOp::Rotate}, {"Posterize", PilOp::Posterize}, {"Solarize", PilOp::Solarize},
      {"SolarizeAdd", PilOp::SolarizeAdd}, {"Color", PilOp::Color}, {"Contrast", PilOp::Contrast},
      {"Brightness", PilOp::Brightness}, {"Sharpness", PilOp::Sharpness}, {"ShearX", PilOp::ShearX},
      {"ShearY", PilOp::ShearY}, {"TranslateX", PilOp::TranslateX}, {"TranslateY", PilOp::TranslateY}};
  return m;
}

// timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, and _RAND_CHOICE_WEIGHTS_0 ("w0").
const std::vector<std::string> kRand{"AutoContrast", "Equalize", "Invert", "Rotate", "Posterize",
                                     "Solarize", "SolarizeAdd", "Color", "Contrast", "Brightness",
                                     "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
const std::vector<std::string> kRandIncreasing{
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
    "TranslateXRel", "TranslateYRel"};
const std::map<std::string, double> kWeights0{
    {"Rotate", 0.3}, {"ShearX", 0.2}, {"ShearY", 0.2}, {"TranslateXRel", 0.1}, {"TranslateYRel", 0.1},
    {"Color", .025}, {"Sharpness", 0.025}, {"AutoContrast", 0.025}, {"Solarize", .005}, {"SolarizeAdd", .005},
    {"Contrast", .005}, {"Brightness", .005}, {"Equalize", .005}, {"Posterize", 0}, {"Invert", 0}};

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
double sign(std::mt19937_64& rng) { return uniform01(rng) > 0.5 ? -1.0 : 1.0; }  // timm's _randomly_negate

double gauss(std::mt19937_64& rng, double mean, double sd) {  // Box-Muller
  const double u = 1.0 - uniform01(rng), v = uniform01(rng);
  return mean + sd * std::sqrt(-2.0 * std::log(u)) * std::cos(2 * kPi * v);
}

// timm's LEVEL_TO_ARG at magnitude m (on timm's 0-10 scale), for an h x w image.
OpCall rand_level(const std::string& name, double m, int h, int w, std::mt19937_64& rng) {
  const double level = m / 10.0;
  auto increasing = [&] { return std::max(0.1, 1.0 + sign(rng) * level * 0.9); };
  if (name == "Rotate") return {PilOp::Rotate, sign(rng) * level * 30.0};
  if (name == "Posterize") return {PilOp::Posterize, static_cast<double>(static_cast<int>(level * 4))};
  if (name == "PosterizeIncreasing") return {PilOp::Posterize, 4.0 - static_cast<int>(level * 4)};
  if (name == "Solarize") return {PilOp::Solarize, static_cast<double>(static_cast<int>(level * 256))};
  if (name == "SolarizeIncreasing") return {PilOp::Solarize, 256.0 - static_cast<int>(level * 256)};
  if (name == "SolarizeAdd") return {PilOp::SolarizeAdd, static_cast<double>(static_cast<int>(level * 110))};
  for (const char* e : {"Color", "Contrast", "Brightness", "Sharpness"}) {
    if (name == e) return {pil_op(e), level * 1.8 + 0.1};
    if (name == std::string(e) + "Increasing") return {pil_op(e), increasing()};
  }
  if (name == "ShearX") return {PilOp::ShearX, sign(rng) * level * 0.3};
  if (name == "ShearY") return {PilOp::ShearY, sign(rng) * level * 0.3};
  if (name == "TranslateXRel") return {PilOp::TranslateX, sign(rng) * level * 0.45 * w};
  if (name == "TranslateYRel") return {PilOp::TranslateY, sign(rng) * level * 0.45 * h};
  return {pil_op(name), 0.0};  // AutoContrast, Equalize, Invert
}

// torchvision's TrivialAugmentWide: one op of 14 (identity included), one of 31 magnitude bins,
// a random sign where the op has one; the arguments as its _apply_op hands them to PIL.
std::vector<OpCall> trivial_ops(std::mt19937_64& rng) {
  const int op = static_cast<int>(rng() % 14), bin = static_cast<int>(rng() % 31);
  const double s = (rng() & 1) ? -1.0 : 1.0;
  auto lin = [&](double lo, double hi) { return static_cast<double>(static_cast<float>(lo + (hi - lo) * bin / 30.0)); };
  switch (op) {
    case 0: return {};  // Identity
    case 1:
    case 2: {  // shear by atan(m) degrees about the corner: PIL's coefficient is tan of that angle
      const double deg = std::atan(s * lin(0, 0.99)) * 180.0 / kPi;
      return {{op == 1 ? PilOp::ShearX : PilOp::ShearY, std::tan(deg * kPi / 180.0)}};
    }
    case 3:
    case 4:  // translate=[int(m), 0]: the input pixel is the output's minus the shift
      return {{op == 3 ? PilOp::TranslateX : PilOp::TranslateY, -std::trunc(s * lin(0, 32))}};
    case 5: return {{PilOp::Rotate, s * lin(0, 135)}};
    case 6: return {{PilOp::Brightness, 1.0 + s * lin(0, 0.99)}};
    case 7: return {{PilOp::Color, 1.0 + s * lin(0, 0.99)}};
    case 8: return {{PilOp::Contrast, 1.0 + s * lin(0, 0.99)}};
    case 9: return {{PilOp::Sharpness, 1.0 + s * lin(0, 0.99)}};
    case 10: return {{PilOp::Posterize, 8.0 - std::nearbyint(static_cast<float>(bin) / 5.0f)}};
    case 11: return {{PilOp::Solarize, lin(255, 0)}};
    case 12: return {{PilOp::AutoContrast, 0}};
    default: return {{PilOp::Equalize, 0}};
  }
}

// ---- the ops, on (b, C, H, W) uint8 with one argument per image -------------------------------

torch::Tensor per_image(const std::vector<double>& args, const torch::Tensor& like) {
  return to_device_async(torch::tensor(args, torch::kDouble), like.device()).view({-1, 1, 1, 1});  // (b, 1, 1, 1)
}

// Pillow's L24 luma, (b, 1, H, W) int32; a 1-channel image is its own luma.
torch::Tensor luma(const torch::Tensor& x) {
  if (x.size(1) == 1) return x.to(torch::kInt);
  auto v = x.to(torch::kInt);
  auto l24 = v.narrow(1, 0, 1) * 19595 + v.narrow(1, 1, 1) * 38470 + v.narrow(1, 2, 1) * 7471 + 0x8000;
  return l24.div(65536, "floor");  // >> 16
}

// Image.blend(degenerate, image, factor) as ImageEnhance calls it: float32 arithmetic,
// truncated and clipped to 0..255 (Pillow's Blend.c).
torch::Tensor blend(const torch::Tensor& degenerate, const torch::Tensor& x, const torch::Tensor& factor) {
  auto d = degenerate.to(torch::kFloat), a = factor.to(torch::kFloat);
  auto v = d + a * (x.to(torch::kFloat) - d);
  return v.clamp(0, 255).trunc().to(torch::kUInt8);
}

// Per image and channel, a 256-entry table applied to the pixels.
torch::Tensor apply_lut(const torch::Tensor& x, const torch::Tensor& lut) {  // lut: (b * C, 256)
  auto flat = x.reshape({lut.size(0), -1}).to(torch::kLong);                  // (b * C, H * W)
  return lut.gather(1, flat).to(torch::kUInt8).view_as(x);
}

torch::Tensor autocontrast(const torch::Tensor& x) {  // ImageOps.autocontrast, cutoff 0, per channel
  auto flat = x.reshape({x.size(0) * x.size(1), -1}).to(torch::kDouble);  // (b * C, H * W)
  auto lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  auto scale = 255.0 / (hi - lo).clamp_min(1), offset = -lo * scale;
  auto ix = torch::arange(256, flat.options()).view({1, 256});
  auto lut = (ix * scale + offset).trunc().clamp(0, 255);
  lut = torch::where(hi > lo, lut, ix.expand_as(lut));
  return apply_lut(x, lut.to(torch::kLong));
}

torch::Tensor equalize(const torch::Tensor& x) {  // ImageOps.equalize, per channel
  const int64_t n = x.size(0) * x.size(1);
  auto flat = x.reshape({n, -1}).to(torch::kLong);  // (b * C, H * W)
  auto hist = torch::zeros({n, 256}, flat.options()).scatter_add_(1, flat, torch::ones_like(flat));
  auto ix = torch::arange(256, flat.options()).view({1, 256});
  // The last non-empty bin's count; the step is the rest of the pixels over 255.
  auto last = std::get<0>(torch::where(hist > 0, ix, torch::zeros_like(ix)).max(1, true));  // (b * C, 1)
  auto step = (flat.size(1) - hist.gather(1, last)).div(255, "floor");
  auto used = (hist > 0).sum(1, true);
  auto cum = hist.cumsum(1) - hist;  // pixels below each bin
  auto lut = (step.div(2, "floor") + cum).div(step.clamp_min(1), "floor").clamp_max(255);
  lut = torch::where((used > 1) & (step > 0), lut, ix.expand_as(lut));
  return apply_lut(x, lut);
}

// ImageFilter.SMOOTH (3 x 3, 1 1 1 / 1 5 1 / 1 1 1 over 13), rounded; border pixels kept.
torch::Tensor smooth(const torch::Tensor& x) {
  const int64_t b = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  if (H < 3 || W < 3) return x;
  auto k = torch::ones({1, 1, 3, 3}, x.options().dtype(torch::kFloat));
  k[0][0][1][1] = 5;
  auto in = x.reshape({b * C, 1, H, W}).to(torch::kFloat);  // (b C, 1, H, W)
  auto inner = (torch::conv2d(in, k / 13.0f) + 0.5f).clamp(0, 255).trunc().to(torch::kUInt8);  // (b C, 1, H-2, W-2)
  auto out = x.clone();
  out.view({b * C, 1, H, W}).narrow(2, 1, H - 2).narrow(3, 1, W - 2).copy_(inner);
  return out;
}

// Image.transform(size, AFFINE, a, resample, fillcolor) with Pillow's filters (Geometry.c):
// each output pixel centre (x + 0.5, y + 0.5) maps to a0 x + a1 y + a2, a3 x + a4 y + a5 in the
// input; outside the input it keeps the fill colour.
torch::Tensor affine(const torch::Tensor& x, const std::vector<std::array<double, 6>>& m, const Resample& r) {
  const int64_t b = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto dopt = torch::TensorOptions().dtype(torch::kDouble).device(x.device());
  std::vector<double> flat_m;
  for (const auto& a : m) flat_m.insert(flat_m.end(), a.begin(), a.end());
  auto a = to_device_async(torch::tensor(flat_m, torch::kDouble), x.device()).view({b, 6, 1, 1});  // (b, 6, 1, 1)
  auto xs = (torch::arange(W, dopt) + 0.5).view({1, 1, W}), ys = (torch::arange(H, dopt) + 0.5).view({1, H, 1});
  auto col = [&](int i) { return a.select(1, i); };                     // (b, 1, 1)
  auto xin = col(0) * xs + col(1) * ys + col(2), yin = col(3) * xs + col(4) * ys + col(5);  // (b, H, W)
  auto src = x.reshape({b, C, H * W}).to(torch::kDouble);               // (b, C, H W)
  auto tap = [&](const torch::Tensor& iy, const torch::Tensor& ix) {    // (b, H, W) -> (b, C, H, W)
    auto idx = (iy * W + ix).view({b, 1, H * W}).expand({b, C, H * W});
    return src.gather(2, idx).view({b, C, H, W});
  };
  auto clipx = [&](const torch::Tensor& v) { return v.clamp(0, W - 1); };
  auto clipy = [&](const torch::Tensor& v) { return v.clamp(0, H - 1); };
  torch::Tensor valid, value;
  if (r.filter == "nearest") {  // COORD: truncation, -1 below zero
    auto ix = torch::where(xin < 0, torch::full_like(xin, -1), xin.trunc()).to(torch::kLong);
    auto iy = torch::where(yin < 0, torch::full_like(yin, -1), yin.trunc()).to(torch::kLong);
    valid = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H);
    value = tap(clipy(iy), clipx(ix));
  } else {
    valid = (xin >= 0) & (xin < W) & (yin >= 0) & (yin < H);
    auto fx = xin - 0.5, fy = yin - 0.5;
    auto x0 = fx.floor(), y0 = fy.floor();
    auto dx = (fx - x0).unsqueeze(1), dy = (fy - y0).unsqueeze(1);  // (b, 1, H, W)
    auto ix = x0.to(torch::kLong), iy = y0.to(torch::kLong);
    // A row of the filter: rows past the bottom edge repeat the previous one (BILINEAR_BODY /
    // BICUBIC_BODY), the first row and every column clip to the image.
    auto in_rows = [&](const torch::Tensor& y) { return ((y >= 0) & (y < H)).unsqueeze(1); };
    if (r.filter == "bilinear") {
      auto row = [&](const torch::Tensor& y) {
        auto p = tap(clipy(y), clipx(ix)), q = tap(clipy(y), clipx(ix + 1));
        return p + (q - p) * dx;
      };
      auto v1 = row(iy);
      auto v2 = torch::where(in_rows(iy + 1), row(iy + 1), v1);
      value = (v1 + (v2 - v1) * dy).trunc();
    } else {  // bicubic: Pillow's cubic convolution (a = -1), taps at floor - 1 .. floor + 2
      auto cubic = [](const torch::Tensor& v1, const torch::Tensor& v2, const torch::Tensor& v3,
                      const torch::Tensor& v4, const torch::Tensor& d) {
        auto p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
        return v2 + d * (p2 + d * (p3 + d * p4));
      };
      auto row = [&](const torch::Tensor& y) {
        auto yc = clipy(y);
        return cubic(tap(yc, clipx(ix - 1)), tap(yc, clipx(ix)), tap(yc, clipx(ix + 1)), tap(yc, clipx(ix + 2)), dx);
      };
      auto v1 = row(iy - 1);
      auto v2 = torch::where(in_rows(iy), row(iy), v1);
      auto v3 = torch::where(in_rows(iy + 1), row(iy + 1), v2);
      auto v4 = torch::where(in_rows(iy + 2), row(iy + 2), v3);
      value = cubic(v1, v2, v3, v4, dy).clamp(0, 255).trunc();
    }
  }
  auto fill = to_device_async(torch::tensor(r.fill, torch::kDouble), x.device());
  fill = (fill.numel() == 1 ? fill.expand({C}) : fill).view({1, C, 1, 1});
  return torch::where(valid.unsqueeze(1), value, fill).to(torch::kUInt8);
}

// Image.rotate(degrees, resample, fillcolor=...) about the centre, without expanding: Pillow's
// matrix, with its 15-decimal rounding of the cosine and sine.
std::array<double, 6> rotation(double degrees, int h, int w) {
  double a = std::fmod(degrees, 360.0);
  if (a < 0) a += 360.0;  // Python's modulo
  const double t = -(a * (kPi / 180.0));
  auto r15 = [](double v) { return std::nearbyint(v * 1e15) / 1e15; };
  std::array<double, 6> m{r15(std::cos(t)), r15(std::sin(t)), 0.0, r15(-std::sin(t)), r15(std::cos(t)), 0.0};
  const double cx = w / 2.0, cy = h / 2.0;
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  return m;
}

}  // namespace

PilOp pil_op(const std::string& name) {
  auto it = op_names().find(name);
  if (it == op_names().end()) fail("unknown augmentation op '", name, "'");
  return it->second;
}

AugmentPolicy augment_policy(const AugmentConfig& a, const ModelConfig& model) {
  AugmentPolicy p;
  const std::string key = "train.augment.auto_augment";
  const std::string& s = a.auto_augment;
  if (s == "trivial") {
    p.kind = "trivial";
    p.resample = Resample{"nearest", {0}};
  } else if (!s.empty()) {
    // timm's rand_augment_transform: "rand" then dash-separated sections, each a key and a number.
    std::vector<std::string> parts;
    for (size_t i = 0, j; i <= s.size(); i = j + 1) {
      j = s.find('-', i);
      if (j == std::string::npos) j = s.size();
      parts.push_back(s.substr(i, j - i));
    }
    if (parts[0] != "rand")
      fail(key, ": '", s, "' is not a RandAugment string (timm's 'rand-m9-mstd0.5-inc1') or 'trivial'");
    p.kind = "rand";
    p.ops = kRand;
    for (size_t i = 1; i < parts.size(); ++i) {
      const std::string& c = parts[i];
      const size_t d = c.find_first_of("0123456789");
      if (d == std::string::npos || d == 0)
        fail(key, ": section '", c, "' of '", s, "' is not a key followed by a number (m, n, mstd, mmax, inc, p, w)");
      const std::string k = c.substr(0, d), v = c.substr(d);
      double val = 0;
      try {
        size_t used = 0;
        val = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        fail(key, ": '", v, "' in section '", c, "' is not a number");
      }
      if (k == "m") p.magnitude = val;
      else if (k == "n") p.layers = static_cast<int>(val);
      else if (k == "mstd") p.magnitude_std = val > 100 ? std::numeric_limits<double>::infinity() : val;
      else if (k == "mmax") p.magnitude_max = val;
      else if (k == "inc") p.ops = val != 0 ? kRandIncreasing : kRand;
      else if (k == "p") p.prob = val;
      else if (k == "w") {
        if (val != 0) fail(key, ": only weight set w0 exists (timm's _RAND_CHOICE_WEIGHTS_0), got '", c, "'");
        p.weights = {0};
      } else {
        fail(key, ": unknown section '", c, "' in '", s, "' (keys: m, n, mstd, mmax, inc, p, w)");
      }
    }
    if (!p.weights.empty()) {
      p.weights.clear();
      for (const auto& name : p.ops) {
        auto it = kWeights0.find(name);
        p.weights.push_back(it == kWeights0.end() ? 0.0 : it->second);
      }
    }
    if (p.layers < 1 || p.layers > 15) fail(key, ": n (ops per image) must be in 1..15, got ", p.layers);
    if (p.magnitude < 0 || p.magnitude_max <= 0) fail(key, ": m and mmax must be >= 0 and > 0");
    if (p.prob <= 0 || p.prob > 1) fail(key, ": p (each op's probability) must be in (0, 1], got ", p.prob);
    std::vector<double> fill;
    for (double m : model.mean) fill.push_back(std::min(255.0, std::nearbyint(255.0 * m)));
    p.resample = Resample{a.interpolation, fill};
  }
  if (!a.color_jitter.empty()) {
    const auto& j = a.color_jitter;
    if (j.size() != 1 && j.size() != 3 && j.size() != 4)
      fail("train.augment.color_jitter: give one number or [brightness, contrast, saturation], got ", j.size(),
           " numbers");
    if (j.size() == 4 && j[3] != 0)
      fail("train.augment.color_jitter: hue jitter is not supported (its fourth value must be 0)");
    for (double v : j)
      if (v < 0) fail("train.augment.color_jitter: values must be >= 0");
    if (j.size() == 1) p.jitter = {j[0], j[0], j[0]};
    else p.jitter = {j[0], j[1], j[2]};
    if (p.jitter == std::vector<double>{0, 0, 0}) p.jitter.clear();
  }
  return p;
}

std::vector<OpCall> draw_ops(const AugmentPolicy& p, int h, int w, std::mt19937_64& rng) {
  std::vector<OpCall> ops;
  if (p.kind == "trivial") {
    ops = trivial_ops(rng);
  } else if (p.kind == "rand") {
    std::vector<size_t> chosen;
    if (p.weights.empty()) {  // with replacement
      for (int l = 0; l < p.layers; ++l) chosen.push_back(static_cast<size_t>(rng() % p.ops.size()));
    } else {  // weighted, without replacement
      std::vector<double> wts = p.weights;
      for (int l = 0; l < p.layers; ++l) {
        double total = 0;
        for (double v : wts) total += v;
        if (total <= 0) break;
        double u = uniform01(rng) * total;
        size_t i = 0, last = 0;
        for (; i < wts.size(); u -= wts[i++]) {
          if (wts[i] > 0) last = i;
          if (u < wts[i]) break;
        }
        if (i == wts.size()) i = last;  // rounding at the top end
        chosen.push_back(i);
        wts[i] = 0;
      }
    }
    for (size_t i : chosen) {
      if (p.prob < 1 && uniform01(rng) > p.prob) continue;
      double m = p.magnitude;
      if (std::isinf(p.magnitude_std)) m = uniform01(rng) * m;
      else if (p.magnitude_std > 0) m = gauss(rng, m, p.magnitude_std);
      m = std::max(0.0, std::min(m, p.magnitude_max));
      ops.push_back(rand_level(p.ops[i], m, h, w, rng));
    }
  }
  if (!p.jitter.empty()) {  // ColorJitter: the three enhancers in a random order
    const PilOp order[3] = {PilOp::Brightness, PilOp::Contrast, PilOp::Color};
    int perm[3] = {0, 1, 2};
    std::shuffle(perm, perm + 3, rng);
    double factor[3];
    for (int k = 0; k < 3; ++k) {
      const double j = p.jitter[k];
      factor[k] = std::max(0.0, 1 - j) + uniform01(rng) * (1 + j - std::max(0.0, 1 - j));
    }
    for (int k : perm)
      if (p.jitter[k] > 0) ops.push_back({order[k], factor[k]});
  }
  return ops;
}

torch::Tensor apply_pil_op(const torch::Tensor& x, PilOp op, const std::vector<double>& args, const Resample& r) {
  const int64_t b = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  switch (op) {
    case PilOp::Invert: return 255 - x;
    case PilOp::AutoContrast: return autocontrast(x);
    case PilOp::Equalize: return equalize(x);
    case PilOp::Posterize: {  // keep the top `bits` bits
      std::vector<double> masks;
      for (double bits : args)
        masks.push_back(bits >= 8 ? 255 : bits <= 0 ? 0 : (0xFF << (8 - static_cast<int>(bits))) & 0xFF);
      return x.bitwise_and(per_image(masks, x).to(torch::kUInt8));
    }
    case PilOp::Solarize:
      return torch::where(x.to(torch::kDouble) >= per_image(args, x), 255 - x, x);
    case PilOp::SolarizeAdd: {
      auto added = (x.to(torch::kDouble) + per_image(args, x)).clamp_max(255).to(torch::kUInt8);
      return torch::where(x < 128, added, x);
    }
    case PilOp::Brightness: return blend(torch::zeros_like(x), x, per_image(args, x));
    case PilOp::Color: return blend(luma(x).expand({b, C, H, W}), x, per_image(args, x));
    case PilOp::Contrast: {  // towards the mean luma, rounded: int(mean + 0.5)
      auto mean = luma(x).to(torch::kDouble).mean({1, 2, 3}, true);
      return blend((mean + 0.5).floor().expand({b, C, H, W}), x, per_image(args, x));
    }
    case PilOp::Sharpness: return blend(smooth(x), x, per_image(args, x));
    case PilOp::Rotate:
    case PilOp::ShearX:
    case PilOp::ShearY:
    case PilOp::TranslateX:
    case PilOp::TranslateY: {
      std::vector<std::array<double, 6>> m;
      for (double v : args) {
        if (op == PilOp::Rotate) m.push_back(rotation(v, static_cast<int>(H), static_cast<int>(W)));
        else if (op == PilOp::ShearX) m.push_back({1, v, 0, 0, 1, 0});
        else if (op == PilOp::ShearY) m.push_back({1, 0, 0, v, 1, 0});
        else if (op == PilOp::TranslateX) m.push_back({1, 0, v, 0, 1, 0});
        else m.push_back({1, 0, 0, 0, 1, v});
      }
      return affine(x, m, r);
    }
  }
  return x;
}

torch::Tensor auto_augment(const torch::Tensor& images, const AugmentPolicy& p, std::mt19937_64& rng) {
  if (p.empty()) return images;
  const int64_t B = images.size(0);
  std::vector<std::vector<OpCall>> plan(B);
  size_t depth = 0;
  for (int64_t i = 0; i < B; ++i) {
    plan[i] = draw_ops(p, static_cast<int>(images.size(2)), static_cast<int>(images.size(3)), rng);
    depth = std::max(depth, plan[i].size());
  }
  // Each image's ops run in its order; the k-th ops of all images run together, one batch per op.
  torch::Tensor x = images.clone();
  for (size_t k = 0; k < depth; ++k) {
    std::map<PilOp, std::pair<std::vector<int64_t>, std::vector<double>>> groups;
    for (int64_t i = 0; i < B; ++i)
      if (k < plan[i].size()) {
        auto& g = groups[plan[i][k].op];
        g.first.push_back(i);
        g.second.push_back(plan[i][k].arg);
      }
    for (const auto& [op, g] : groups) {
      auto idx = to_device_async(torch::tensor(g.first, torch::kLong), x.device());
      x.index_copy_(0, idx, apply_pil_op(x.index_select(0, idx), op, g.second, p.resample));
    }
  }
  return x;
}

}  // namespace vitlab
