#pragma once
// Resizing a batch of decoded images on the GPU, each from its own region to its own place in
// one (B, C, S, S) uint8 output: the transform of data/transform.h (PIL's antialiased bilinear or
// bicubic filter, the region clamping of torchvision's resized_crop) after nvJPEG has decoded the
// images (data/nvjpeg_loader.cpp). The kernel evaluates the separable filter in float32 in one
// pass, where PIL rounds to 8 bits between its two passes: a pixel may differ from PIL's by one
// grey level.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace vitlab::kernels {

struct ResizeJob {
  const uint8_t* src;  // interleaved RGB, rows `pitch` bytes apart
  int pitch;
  int y0, x0, h, w;    // the region of the source that is resized (the crop box, or the whole image)
  int rh, rw;          // the size the region is resized to
  int top, left;       // the S x S window of that resized image that is written
};

// jobs: `count` ResizeJob in device memory; out: (count, channels, S, S) uint8, channels 3 (RGB)
// or 1 (PIL's L luma of the resized RGB).
void resize_batch(const ResizeJob* jobs, int count, int size, int channels, bool bicubic, uint8_t* out,
                  cudaStream_t stream);

}  // namespace vitlab::kernels
