#include "vitlab/data/transform.h"

#include <algorithm>
#include <cmath>

namespace vitlab {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_filter(double x) {  // Keys' cubic with a = -0.5, as Pillow
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc: for each output pixel, the first input
// pixel, the count, and `ksize` fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weight;
};

Coeffs precompute(int in_size, double in0, double in1, int out_size, bool bicubic) {
  const double support0 = bicubic ? 2.0 : 1.0;
  const double scale = (in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weight.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic ? bicubic_filter((x + xmin - center + 0.5) * ss) : bilinear_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      c.weight[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

}  // namespace

Image8 crop_view(const Image8& in, const CropBox& box) {
  return {in.data + box.top * in.stride + static_cast<int64_t>(box.left) * in.c, box.height, box.width, in.c, in.stride};
}

void pil_resize(const Image8& in, int out_h, int out_w, bool bicubic, std::vector<uint8_t>& out) {
  const int C = in.c;
  // Pillow's ImagingResampleInner: a pass is skipped when it would be the identity.
  const bool need_h = out_w != in.w, need_v = out_h != in.h;
  Coeffs ch = precompute(in.w, 0, in.w, out_w, bicubic);
  Coeffs cv = precompute(in.h, 0, in.h, out_h, bicubic);
  // Rows of the input the vertical pass reads.
  const int y_first = cv.first[0], y_last = cv.first[out_h - 1] + cv.count[out_h - 1];

  std::vector<uint8_t> temp;
  const uint8_t* src = in.data;
  int64_t src_stride = in.stride;
  int src_w = in.w, row0 = 0;  // row0: the input row that src's first row is
  if (need_h) {
    const int rows = y_last - y_first;
    temp.resize(static_cast<size_t>(rows) * out_w * C);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* r = in.data + (y + y_first) * in.stride;
      uint8_t* o = temp.data() + static_cast<size_t>(y) * out_w * C;
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = &ch.weight[static_cast<size_t>(xx) * ch.ksize];
        const uint8_t* p = r + static_cast<int64_t>(ch.first[xx]) * C;
        for (int c = 0; c < C; ++c) {
          int32_t ss = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < ch.count[xx]; ++x) ss += p[x * C + c] * k[x];
          o[xx * C + c] = clip8(ss);
        }
      }
    }
    src = temp.data();
    src_stride = static_cast<int64_t>(out_w) * C;
    src_w = out_w;
    row0 = y_first;
  }
  out.resize(static_cast<size_t>(out_h) * out_w * C);
  if (!need_v) {  // src's rows, unchanged
    for (int y = 0; y < out_h; ++y)
      std::copy_n(src + (y - row0) * src_stride, static_cast<size_t>(out_w) * C,
                  out.data() + static_cast<size_t>(y) * out_w * C);
    return;
  }
  const int64_t row_bytes = static_cast<int64_t>(src_w) * C;
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &cv.weight[static_cast<size_t>(yy) * cv.ksize];
    const uint8_t* base = src + (cv.first[yy] - row0) * src_stride;
    uint8_t* o = out.data() + static_cast<size_t>(yy) * out_w * C;
    for (int64_t x = 0; x < row_bytes; ++x) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < cv.count[yy]; ++y) ss += base[y * src_stride + x] * k[y];
      o[x] = clip8(ss);
    }
  }
}

double uniform(std::mt19937_64& rng, double a, double b) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1), 53 bits
  return a + (b - a) * u;
}

int randint(std::mt19937_64& rng, int a, int b) {
  return a + static_cast<int>(rng() % static_cast<uint64_t>(b - a + 1));
}

CropBox random_resized_crop_box(int h, int w, const std::vector<double>& scale, const std::vector<double>& ratio,
                                std::mt19937_64& rng) {
  const double area = static_cast<double>(h) * w;
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = uniform(rng, scale[0], scale[1]) * area;
    const double aspect = std::exp(uniform(rng, log_r0, log_r1));
    // Python's round(): half to even, as std::nearbyint in the default rounding mode.
    const int tw = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int th = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (tw <= w && th <= h) return {randint(rng, 0, h - th), randint(rng, 0, w - tw), th, tw};
  }
  const double in_ratio = static_cast<double>(w) / h;
  int cw = w, chh = h;
  if (in_ratio < ratio[0]) {
    chh = static_cast<int>(std::nearbyint(w / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    cw = static_cast<int>(std::nearbyint(h * ratio[1]));
  }
  return {(h - chh) / 2, (w - cw) / 2, chh, cw};
}

EvalGeometry eval_geometry(int h, int w, int size, double crop_pct, const std::string& crop_mode) {
  if (crop_pct <= 0) return {size, size, {0, 0, size, size}};
  // torchvision's Resize(int): the shorter side to floor(size / crop_pct), the longer to
  // int(that * long / short); timm's "squash": both sides to it. CenterCrop's offsets
  // round((H - size) / 2) half to even.
  const int s = static_cast<int>(std::floor(static_cast<double>(size) / crop_pct));
  const int other = crop_mode == "squash" ? s : static_cast<int>(static_cast<double>(s) * std::max(h, w) / std::min(h, w));
  const int rh = h <= w ? s : other, rw = h <= w ? other : s;
  const int top = static_cast<int>(std::nearbyint((rh - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((rw - size) / 2.0));
  return {rh, rw, {top, left, size, size}};
}

void to_luma(const Image8& in, bool bgr, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(in.h) * in.w);
  const int r = bgr ? 2 : 0, b = bgr ? 0 : 2;
  for (int y = 0; y < in.h; ++y) {
    const uint8_t* p = in.data + y * in.stride;
    for (int x = 0; x < in.w; ++x, p += in.c)  // L = R 299/1000 + G 587/1000 + B 114/1000 (Pillow's L24)
      out[static_cast<size_t>(y) * in.w + x] = static_cast<uint8_t>((p[r] * 19595 + p[1] * 38470 + p[b] * 7471 + 0x8000) >> 16);
  }
}

}  // namespace vitlab
