#pragma once
// Per-image transforms of the image-folder pipeline, on 8-bit interleaved (HWC) pixels, run by
// the decode workers: PIL's resampling (bit for bit), timm's RandomResizedCrop geometry and its
// evaluation geometry (resize the shorter side, centre crop). No LibTorch here: the workers
// stay off its thread pool.
#include <cstdint>
#include <random>
#include <vector>

namespace vitlab {

struct Image8 {  // h x w x c bytes, rows `stride` bytes apart
  const uint8_t* data = nullptr;
  int h = 0, w = 0, c = 0;
  int64_t stride = 0;
};

struct CropBox {  // pixels, as torchvision's (top, left, height, width)
  int top = 0, left = 0, height = 0, width = 0;
};

// PIL's Image.resize for mode L / RGB with the BILINEAR or BICUBIC filter (Pillow's
// Resample.c): antialiased when shrinking, two passes (horizontal first), 22-bit fixed-point
// weights, so the output equals PIL's byte for byte. `out` gets out_h x out_w x c.
void pil_resize(const Image8& in, int out_h, int out_w, bool bicubic, std::vector<uint8_t>& out);

// The pixels of `box` as an image of their own (no copy), as PIL's Image.crop: resizing the
// view is torchvision's resized_crop, whose filter stops at the crop's edges.
Image8 crop_view(const Image8& in, const CropBox& box);

// timm's RandomResizedCropAndInterpolation.get_params: up to ten draws of an area fraction
// (uniform in scale) and a log-uniform aspect ratio, the first box that fits placed uniformly;
// else the centre crop of the ratio nearest the image's. `rng` is the image's own generator.
CropBox random_resized_crop_box(int h, int w, const std::vector<double>& scale, const std::vector<double>& ratio,
                                std::mt19937_64& rng);

// The evaluation geometry of resize_images (dataset.h): crop_pct > 0 resizes the shorter side to
// floor(size / crop_pct), the longer in proportion (crop_mode "center"), or both sides to it
// ("squash"), then takes the centre size x size crop; crop_pct 0 resizes the whole image to
// size x size. Returns the resize's (height, width) and the crop within it.
struct EvalGeometry {
  int resize_h, resize_w;
  CropBox crop;
};
EvalGeometry eval_geometry(int h, int w, int size, double crop_pct, const std::string& crop_mode = "center");

// ITU-R 601-2 luma with PIL's rounding (Image.convert("L")), from BGR or RGB pixels.
void to_luma(const Image8& in, bool bgr, std::vector<uint8_t>& out);

// Python's random.uniform / random.randint on `rng` (53-bit doubles).
double uniform(std::mt19937_64& rng, double a, double b);
int randint(std::mt19937_64& rng, int a, int b);  // a <= x <= b

}  // namespace vitlab
