// What nvJPEG's decode calls wait for while another stream keeps the GPU busy (issue 21): the
// folder-fed training step runs at 0.71-0.79 of the in-memory step with CUDA graphs, and the
// loader's batched call on the hardware decoder then holds its thread 36-39 ms a batch of 256
// against 8.5 ms alone, about the alone time plus one training step (28 ms). Two readings fit:
// the call waits for the whole device (a device-wide synchronisation inside it), or its own
// kernels wait for multiprocessors the training occupies. This program separates them. On a
// second, non-blocking stream ("training") it queues 40 ms of work, either
//   one_block:     one block that spins (the device is busy, its multiprocessors nearly all free)
//   full:          400 kernels of 100 us that fill every multiprocessor (like graphed steps)
//   half:          the same at half occupancy (room left on every multiprocessor)
//   full_dec_high: full, the decoder's stream at the highest priority (the load's is the lowest)
// and then times, on the host, one decode of the same 256 JPEGs by each method:
//   hw_batched      nvjpegDecodeBatched on the hardware backend, RGB out (what the loader calls)
//   hw_batched_yuv  the same with planar YUV out, hw_batched_y with luma only (no colour
//                   conversion: whether that is the part that waits)
//   hybrid_threads  the decoupled API on the hybrid backend (Huffman on the CPU), the batch split
//                   over T host threads, each with its own state, buffers and stream
//   cuda_free       cudaMalloc + cudaFree of 1 MB: a call known to wait for the whole device
// `call_ms` is the host time until the method returns, `done_ms` until its stream has finished;
// a method that waits for the device shows about 40 ms more under one_block than idle.
// Build and run on the GPU machine (bash scripts/gpu_check.sh decode_contention does both):
//   nvcc -O3 -std=c++17 -arch=sm_90 experiments/data_pipeline/decode_contention.cu -lnvjpeg
//        -o /tmp/decode_contention && /tmp/decode_contention DIR [THREADS...]
// DIR holds the JPEGs (searched recursively; the first 256 by name). One JSON object out.
#include <cuda_runtime.h>
#include <nvjpeg.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "decode_contention: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
void check(nvjpegStatus_t s, const char* what) {
  if (s != NVJPEG_STATUS_SUCCESS) {
    std::fprintf(stderr, "decode_contention: %s: nvjpegStatus %d\n", what, static_cast<int>(s));
    std::exit(1);
  }
}

__device__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__global__ void spin(unsigned long long ns) {
  const unsigned long long t0 = now_ns();
  while (now_ns() - t0 < ns) {
  }
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Jpeg {
  std::vector<unsigned char> bytes;
  int w = 0, h = 0;
  size_t offset = 0;  // into the output buffer (RGB interleaved, w * 3 a row)
};

// The hybrid backend through the decoupled API, one host thread's share of the batch: the host
// phase on this thread, transfer and device phases on its stream; two pinned buffers so the
// host phase of an image overlaps the transfer of the one before (as NVIDIA's samples do).
struct HybridWorker {
  nvjpegJpegDecoder_t decoder = nullptr;
  nvjpegJpegState_t state = nullptr;
  nvjpegBufferPinned_t pinned[2] = {nullptr, nullptr};
  nvjpegBufferDevice_t device = nullptr;
  nvjpegJpegStream_t streams[2] = {nullptr, nullptr};
  nvjpegDecodeParams_t params = nullptr;
  cudaStream_t stream = nullptr;

  explicit HybridWorker(nvjpegHandle_t h) {
    check(nvjpegDecoderCreate(h, NVJPEG_BACKEND_HYBRID, &decoder), "nvjpegDecoderCreate(HYBRID)");
    check(nvjpegDecoderStateCreate(h, decoder, &state), "nvjpegDecoderStateCreate");
    for (int i = 0; i < 2; ++i) {
      check(nvjpegBufferPinnedCreate(h, nullptr, &pinned[i]), "nvjpegBufferPinnedCreate");
      check(nvjpegJpegStreamCreate(h, &streams[i]), "nvjpegJpegStreamCreate");
    }
    check(nvjpegBufferDeviceCreate(h, nullptr, &device), "nvjpegBufferDeviceCreate");
    check(nvjpegStateAttachDeviceBuffer(state, device), "nvjpegStateAttachDeviceBuffer");
    check(nvjpegDecodeParamsCreate(h, &params), "nvjpegDecodeParamsCreate");
    check(nvjpegDecodeParamsSetOutputFormat(params, NVJPEG_OUTPUT_RGBI), "nvjpegDecodeParamsSetOutputFormat");
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  }

  void decode(nvjpegHandle_t h, const std::vector<Jpeg>& jpegs, unsigned char* out, int first, int step) {
    int buf = 0;
    for (int i = first; i < static_cast<int>(jpegs.size()); i += step, buf ^= 1) {
      const Jpeg& j = jpegs[i];
      check(nvjpegJpegStreamParse(h, j.bytes.data(), j.bytes.size(), 0, 0, streams[buf]), "nvjpegJpegStreamParse");
      check(nvjpegStateAttachPinnedBuffer(state, pinned[buf]), "nvjpegStateAttachPinnedBuffer");
      check(nvjpegDecodeJpegHost(h, decoder, state, params, streams[buf]), "nvjpegDecodeJpegHost");
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");  // the other pinned buffer is free again
      check(nvjpegDecodeJpegTransferToDevice(h, decoder, state, streams[buf], stream), "TransferToDevice");
      nvjpegImage_t img{};
      img.channel[0] = out + j.offset;
      img.pitch[0] = static_cast<size_t>(j.w) * 3;
      check(nvjpegDecodeJpegDevice(h, decoder, state, &img, stream), "nvjpegDecodeJpegDevice");
    }
  }
};

// One hardware-decoder batch per output format and batch size, each with its own handle (with
// four batched states on one hardware handle, a decode failed with NVJPEG_STATUS_ALLOCATOR_FAILURE
// on an H100, nvJPEG 13).
struct HwBatch {
  nvjpegHandle_t handle = nullptr;
  nvjpegJpegState_t state = nullptr;
  std::vector<const unsigned char*> data;
  std::vector<size_t> lengths;
  std::vector<nvjpegImage_t> imgs;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_contention DIR [THREADS...]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each result line out at once, should a later method fail
  std::vector<int> thread_counts;
  for (int i = 2; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
  if (thread_counts.empty()) thread_counts = {8, 15};

  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::recursive_directory_iterator(argv[1]))
    if (e.is_regular_file() && e.path().extension() == ".jpg") paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  if (paths.size() < 256) {
    std::fprintf(stderr, "decode_contention: %s holds %zu JPEGs, 256 needed\n", argv[1], paths.size());
    return 1;
  }
  paths.resize(256);

  nvjpegHandle_t hw = nullptr, hybrid = nullptr;
  const bool has_hw = nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, nullptr, nullptr, 0, &hw) == NVJPEG_STATUS_SUCCESS;
  check(nvjpegCreateSimple(&hybrid), "nvjpegCreateSimple");

  // Each image's output: RGB interleaved (w * 3 a row), or for the planar formats Y (w a row)
  // then the two chroma planes at their own (subsampled) sizes, all within the same w * h * 3.
  std::vector<Jpeg> jpegs(paths.size());
  std::vector<std::array<int, 4>> plane_w(paths.size()), plane_h(paths.size());
  size_t total = 0, bytes = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::ifstream in(paths[i], std::ios::binary);
    jpegs[i].bytes.assign(std::istreambuf_iterator<char>(in), {});
    int comps = 0, ws[NVJPEG_MAX_COMPONENT], hs[NVJPEG_MAX_COMPONENT];
    nvjpegChromaSubsampling_t sub;
    check(nvjpegGetImageInfo(hybrid, jpegs[i].bytes.data(), jpegs[i].bytes.size(), &comps, &sub, ws, hs),
          "nvjpegGetImageInfo");
    for (int c = 0; c < 3; ++c) plane_w[i][c] = ws[c < comps ? c : 0], plane_h[i][c] = hs[c < comps ? c : 0];
    jpegs[i].w = ws[0], jpegs[i].h = hs[0], jpegs[i].offset = total;
    total += static_cast<size_t>(ws[0]) * hs[0] * 3;
    bytes += jpegs[i].bytes.size();
  }
  unsigned char* out = nullptr;
  check(cudaMalloc(&out, total), "cudaMalloc");

  // The load's stream at the lowest priority (the default's), the decoders' at the default or
  // the highest: whether priority lets the decoder's work pass the queued load.
  int least = 0, greatest = 0;
  check(cudaDeviceGetStreamPriorityRange(&least, &greatest), "cudaDeviceGetStreamPriorityRange");
  cudaStream_t train = nullptr, dec = nullptr, dec_high = nullptr;
  check(cudaStreamCreateWithPriority(&train, cudaStreamNonBlocking, least), "cudaStreamCreate");
  check(cudaStreamCreateWithPriority(&dec, cudaStreamNonBlocking, least), "cudaStreamCreate");
  check(cudaStreamCreateWithPriority(&dec_high, cudaStreamNonBlocking, greatest), "cudaStreamCreate");
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "cudaDeviceGetAttribute");

  auto hw_batch = [&](nvjpegOutputFormat_t fmt, int first, int count) {
    HwBatch b;
    check(nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, nullptr, nullptr, 0, &b.handle), "nvjpegCreateEx(HARDWARE)");
    check(nvjpegJpegStateCreate(b.handle, &b.state), "nvjpegJpegStateCreate");
    check(nvjpegDecodeBatchedInitialize(b.handle, b.state, count, 1, fmt), "nvjpegDecodeBatchedInitialize");
    for (int i = first; i < first + count; ++i) {
      b.data.push_back(jpegs[i].bytes.data());
      b.lengths.push_back(jpegs[i].bytes.size());
      nvjpegImage_t img{};
      unsigned char* base = out + jpegs[i].offset;
      if (fmt == NVJPEG_OUTPUT_RGBI) {
        img.channel[0] = base, img.pitch[0] = static_cast<size_t>(jpegs[i].w) * 3;
      } else {
        size_t at = 0;
        for (int c = 0; c < (fmt == NVJPEG_OUTPUT_Y ? 1 : 3); ++c) {
          img.channel[c] = base + at, img.pitch[c] = static_cast<size_t>(plane_w[i][c]);
          at += static_cast<size_t>(plane_w[i][c]) * plane_h[i][c];
        }
      }
      b.imgs.push_back(img);
    }
    return b;
  };
  auto hw_decode = [&](HwBatch& b, cudaStream_t s) {
    check(nvjpegDecodeBatched(b.handle, b.state, b.data.data(), b.lengths.data(), b.imgs.data(), s), "nvjpegDecodeBatched");
  };

  // Methods: each decodes the batch (or makes its call) on the stream it is given and returns
  // the stream to wait on.
  std::vector<std::pair<std::string, std::function<cudaStream_t(cudaStream_t)>>> methods;
  std::vector<HwBatch> hw_batches;
  hw_batches.reserve(8);
  if (has_hw) {
    const std::pair<const char*, nvjpegOutputFormat_t> formats[] = {
        {"hw_batched", NVJPEG_OUTPUT_RGBI}, {"hw_batched_yuv", NVJPEG_OUTPUT_YUV}, {"hw_batched_y", NVJPEG_OUTPUT_Y}};
    for (const auto& [name, fmt] : formats) {
      HwBatch* b = &hw_batches.emplace_back(hw_batch(fmt, 0, static_cast<int>(jpegs.size())));
      methods.emplace_back(name, [&, b](cudaStream_t s) {
        hw_decode(*b, s);
        return s;
      });
    }
  }
  std::vector<std::vector<HybridWorker>> pools;
  pools.reserve(thread_counts.size());
  auto hybrid_rows = [&](std::vector<HybridWorker>* pool, int first) {
    const int t = static_cast<int>(pool->size());
    std::vector<std::thread> threads;
    for (int k = 0; k < t; ++k)
      threads.emplace_back([&, pool, k, t] { (*pool)[k].decode(hybrid, jpegs, out, first + k, t); });
    for (auto& th : threads) th.join();
    for (int k = 1; k < t; ++k) check(cudaStreamSynchronize((*pool)[k].stream), "cudaStreamSynchronize");
    return (*pool)[0].stream;
  };
  for (int t : thread_counts) {
    pools.emplace_back();
    for (int k = 0; k < t; ++k) pools.back().emplace_back(hybrid);
    std::vector<HybridWorker>* pool = &pools.back();
    methods.emplace_back("hybrid_threads_" + std::to_string(t), [&, pool](cudaStream_t) { return hybrid_rows(pool, 0); });
  }
  methods.emplace_back("cuda_free", [&](cudaStream_t s) {
    void* p = nullptr;
    check(cudaMalloc(&p, 1 << 20), "cudaMalloc");
    check(cudaFree(p), "cudaFree");
    return s;
  });

  // Whether the decoupled API takes the hardware backend at all (the README's open question).
  nvjpegJpegDecoder_t hw_decoupled = nullptr;
  const int decoupled_hw_status = has_hw ? static_cast<int>(nvjpegDecoderCreate(hw, NVJPEG_BACKEND_HARDWARE, &hw_decoupled)) : -1;

  // Loads of 40 ms on the training stream: one spinning block; 400 kernels of 100 us filling
  // every multiprocessor (8 blocks of 256 threads each); the same at half (4 blocks an SM, room
  // left on each); full with the decoder's stream at the highest priority.
  const char* loads[] = {"idle", "one_block", "full", "half", "full_dec_high"};
  auto queue_load = [&](int load) {
    if (load == 1) spin<<<1, 32, 0, train>>>(40000000ull);
    if (load == 2 || load == 4)
      for (int k = 0; k < 400; ++k) spin<<<sms * 8, 256, 0, train>>>(100000ull);
    if (load == 3)
      for (int k = 0; k < 400; ++k) spin<<<sms * 4, 256, 0, train>>>(100000ull);
    check(cudaGetLastError(), "spin");
  };
  double load_alone[5] = {0, 0, 0, 0, 0};
  for (int load = 1; load < 5; ++load) {
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    const auto t0 = std::chrono::steady_clock::now();
    queue_load(load);
    check(cudaStreamSynchronize(train), "cudaStreamSynchronize");
    load_alone[load] = ms_since(t0);
  }

  std::printf("{\"jpegs\": %zu, \"mean_kb\": %.1f, \"decoded_mb\": %.1f, \"sms\": %d, \"hw\": %s,"
              " \"decoupled_hw_decoder_status\": %d, \"load_alone_ms\": {\"one_block\": %.2f, \"full\": %.2f,"
              " \"half\": %.2f}, \"results\": [",
              jpegs.size(), bytes / 1024.0 / jpegs.size(), total / 1e6, sms, has_hw ? "true" : "false",
              decoupled_hw_status, load_alone[1], load_alone[2], load_alone[3]);
  bool first = true;
  for (auto& [name, run] : methods) {
    for (int w = 0; w < 2; ++w) check(cudaStreamSynchronize(run(dec)), "warm-up");  // first calls allocate
    for (int load = 0; load < 5; ++load) {
      cudaStream_t s_dec = load == 4 ? dec_high : dec;
      std::vector<double> call, done;
      for (int rep = 0; rep < 3; ++rep) {
        check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        queue_load(load);
        const auto t0 = std::chrono::steady_clock::now();
        cudaStream_t s = run(s_dec);
        call.push_back(ms_since(t0));
        check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
        done.push_back(ms_since(t0));
      }
      std::sort(call.begin(), call.end());
      std::sort(done.begin(), done.end());
      std::printf("%s\n  {\"method\": \"%s\", \"load\": \"%s\", \"call_ms\": %.2f, \"done_ms\": %.2f,"
                  " \"call_ms_min_max\": [%.2f, %.2f]}",
                  first ? "" : ",", name.c_str(), loads[load], call[1], done[1], call[0], call[2]);
      first = false;
    }
  }
  std::printf("\n]}\n");
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return 0;
}
