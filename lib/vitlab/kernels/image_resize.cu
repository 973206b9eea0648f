#include "vitlab/kernels/image_resize.h"

namespace vitlab::kernels {
namespace {

constexpr int kMaxTaps = 64;  // a region up to 32x (bilinear) or 16x (bicubic) the output side

__device__ inline float filter(float x, bool bicubic) {
  x = fabsf(x);
  if (!bicubic) return x < 1.f ? 1.f - x : 0.f;
  const float a = -0.5f;  // Keys' cubic, as Pillow
  if (x < 1.f) return ((a + 2.f) * x - (a + 3.f)) * x * x + 1.f;
  if (x < 2.f) return (((x - 5.f) * x + 8.f) * x - 4.f) * a;
  return 0.f;
}

// Pillow's precompute_coeffs for output pixel `o` of a side of `in` pixels resized to `out`:
// the first tap and the normalised weights. Returns the tap count.
__device__ inline int taps(int o, int in, int out, bool bicubic, int* first, float* w) {
  const float scale = static_cast<float>(in) / out;
  const float fscale = fmaxf(scale, 1.f);
  const float support = (bicubic ? 2.f : 1.f) * fscale;
  const float center = (o + 0.5f) * scale;
  int lo = static_cast<int>(center - support + 0.5f);
  if (lo < 0) lo = 0;
  int hi = static_cast<int>(center + support + 0.5f);
  if (hi > in) hi = in;
  int n = min(hi - lo, kMaxTaps);
  float sum = 0.f;
  for (int i = 0; i < n; ++i) {
    w[i] = filter((i + lo - center + 0.5f) / fscale, bicubic);
    sum += w[i];
  }
  if (sum != 0.f)
    for (int i = 0; i < n; ++i) w[i] /= sum;
  *first = lo;
  return n;
}

// One thread per output pixel (all channels): grid (ceil(S*S / 256), count).
__global__ void resize_kernel(const ResizeJob* jobs, int size, int channels, bool bicubic, uint8_t* out) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= size * size) return;
  const ResizeJob job = jobs[blockIdx.y];
  const int oy = p / size + job.top, ox = p % size + job.left;  // in the resized region
  int fy, fx;
  float wy[kMaxTaps], wx[kMaxTaps];
  const int ny = taps(oy, job.h, job.rh, bicubic, &fy, wy);
  const int nx = taps(ox, job.w, job.rw, bicubic, &fx, wx);
  float acc[3] = {0.f, 0.f, 0.f};
  for (int i = 0; i < ny; ++i) {
    const uint8_t* row = job.src + static_cast<int64_t>(job.y0 + fy + i) * job.pitch + (job.x0 + fx) * 3;
    float r[3] = {0.f, 0.f, 0.f};
    for (int j = 0; j < nx; ++j) {
      r[0] += wx[j] * row[3 * j];
      r[1] += wx[j] * row[3 * j + 1];
      r[2] += wx[j] * row[3 * j + 2];
    }
    acc[0] += wy[i] * r[0];
    acc[1] += wy[i] * r[1];
    acc[2] += wy[i] * r[2];
  }
  const int64_t plane = static_cast<int64_t>(size) * size;
  uint8_t* o = out + static_cast<int64_t>(blockIdx.y) * channels * plane + p;
  auto u8 = [](float v) { return static_cast<uint8_t>(fminf(fmaxf(rintf(v), 0.f), 255.f)); };
  if (channels == 3) {
    o[0] = u8(acc[0]);
    o[plane] = u8(acc[1]);
    o[2 * plane] = u8(acc[2]);
  } else {  // ITU-R 601-2 luma, PIL's weights
    o[0] = u8(0.299f * u8(acc[0]) + 0.587f * u8(acc[1]) + 0.114f * u8(acc[2]));
  }
}

}  // namespace

void resize_batch(const ResizeJob* jobs, int count, int size, int channels, bool bicubic, uint8_t* out,
                  cudaStream_t stream) {
  if (count == 0) return;
  const dim3 grid((size * size + 255) / 256, count);
  resize_kernel<<<grid, 256, 0, stream>>>(jobs, size, channels, bicubic, out);
}

}  // namespace vitlab::kernels
