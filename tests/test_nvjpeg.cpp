// The nvJPEG loader (CUDA builds with nvJPEG; skipped elsewhere, saying why): its evaluation
// transform against PIL's decode + timm's transform of the committed JPEG, its crops repeatable
// from (seed, epoch, index), a broken JPEG named, and batches that stay intact while the GPU is
// busy; each with the batch on the hardware decoder and split with the hybrid decoder
// (data.hw_decoder_load).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_util.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/data/nvjpeg_loader.h"
#include "vitlab/io/files.h"

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

const std::string kFixtures = std::string(VITLAB_FIXTURES) + "/transforms";

bool skip_reason(std::string& why) {
  if (!torch::cuda::is_available()) why = "needs CUDA";
  else if (!nvjpeg_available()) why = "this build has no nvJPEG (CUDA's nvjpeg library was not found)";
  return !why.empty();
}

// root/a/<i>.jpg and root/b/<i>.jpg: the first half of `jpegs` in a, the second in b.
Dataset jpeg_folder(const std::string& root, const std::vector<std::string>& jpegs, const ModelConfig& m,
                    double crop_pct, double hw_decoder_load = 1.0) {
  const size_t half = jpegs.size() / 2;
  for (size_t k = 0; k < jpegs.size(); ++k) {
    const std::string cls = k < half ? "a" : "b";
    make_directories(join_path(root, cls));
    write_file(join_path(root, cls + "/" + std::to_string(k < half ? k : k - half) + ".jpg"), jpegs[k]);
  }
  DataConfig dc;
  dc.spec = "folder:" + root;
  dc.val_size = 0;
  dc.crop_pct = crop_pct;
  dc.interpolation = "bicubic";
  dc.hw_decoder_load = hw_decoder_load;
  return load_data(dc, &m).test;
}

// `per_class` copies of the fixture JPEG in each class.
Dataset jpeg_folder(const std::string& root, int per_class, const ModelConfig& m, double crop_pct,
                    double hw_decoder_load = 1.0) {
  return jpeg_folder(root, std::vector<std::string>(2 * per_class, read_text(join_path(kFixtures, "source.jpg"))), m,
                     crop_pct, hw_decoder_load);
}

}  // namespace

TEST(Nvjpeg, EvalTransformIsWithinAGreyLevelOfPils) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  const std::string raw = read_text(join_path(kFixtures, "jpeg_eval.rgb"));
  auto want = torch::from_blob(const_cast<char*>(raw.data()), {32, 32, 3}, torch::kUInt8).permute({2, 0, 1}).to(torch::kInt);
  // All four rows on the hardware decoder; two there and two on the hybrid decoder; all four on it.
  for (double hw_load : {1.0, 0.5, 0.0}) {
    SCOPED_TRACE("data.hw_decoder_load " + std::to_string(hw_load));
    TempDir dir;
    ModelConfig m;
    m.in_chans = 3, m.image_size = 32, m.mean = {0.5}, m.std = {0.5};
    Dataset d = jpeg_folder(dir.path, 2, m, 0.875, hw_load);
    auto loader = make_loader(d, torch::arange(d.size()), 4, false, LoaderOptions{torch::Device(torch::kCUDA)});
    Dataset b = loader->batch(0);
    ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
    EXPECT_TRUE(b.images.is_cuda());
    for (int row : {0, 3}) {
      auto diff = (b.images[row].cpu().to(torch::kInt) - want).abs().to(torch::kDouble);
      // Two decoders (nvJPEG's IDCT and chroma upsampling against libjpeg's) and one rounding
      // instead of PIL's two: small, unbiased differences.
      EXPECT_LT(diff.mean().item<double>(), 1.5) << "mean |difference| from PIL's pixels, row " << row;
      EXPECT_LE(diff.max().item<double>(), 12) << "largest difference from PIL's pixels, row " << row;
      std::printf("nvJPEG (hw_decoder_load %.1f, row %d) vs PIL: mean |diff| %.3f, max %.0f grey levels\n", hw_load, row,
                  diff.mean().item<double>(), diff.max().item<double>());
    }
    EXPECT_TRUE(torch::equal(b.labels.cpu(), torch::tensor({0, 0, 1, 1})));
  }
}

TEST(Nvjpeg, CropsRepeatAndBrokenFilesAreNamed) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  TempDir dir;
  ModelConfig m;
  m.in_chans = 3, m.image_size = 16, m.mean = {0.5}, m.std = {0.5};
  Dataset d = jpeg_folder(dir.path, 6, m, 0.0);
  AugmentConfig aug;
  aug.rrc = true;
  for (double hw_load : {1.0, 0.5}) {
    SCOPED_TRACE("data.hw_decoder_load " + std::to_string(hw_load));
    auto files = std::make_shared<ImageFiles>(*d.files);
    files->hw_decoder_load = hw_load;
    d.files = files;
    auto run = [&](int64_t epoch) {
      auto loader =
          make_loader(d, torch::arange(d.size()), 4, true, LoaderOptions{torch::Device(torch::kCUDA), &aug, 3, epoch});
      std::vector<torch::Tensor> out;
      for (int64_t s = 0; s < loader->steps(); ++s) out.push_back(loader->batch(s).images.cpu());
      return torch::cat(out);
    };
    auto a = run(0), b = run(0), c = run(1);
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{12, 3, 16, 16}));
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_FALSE(torch::equal(a, c));
    EXPECT_FALSE(torch::equal(a[0], a[1]));  // each image its own crop
  }
  const std::string jpeg = read_text(join_path(kFixtures, "source.jpg"));
  write_file(dir / "a/0.jpg", jpeg.substr(0, jpeg.size() / 2));
  auto loader = make_loader(d, torch::arange(d.size()), 4, false, LoaderOptions{torch::Device(torch::kCUDA)});
  EXPECT_NE(error_of([&] { loader->batch(0); }).find(dir / "a/0.jpg: truncated JPEG"), std::string::npos);
}

// nvJPEG's hardware decoder writes its output when called, not in stream order (see
// data/nvjpeg_loader.cpp): memory handed back by the caching allocator from the previous batch,
// whose resize kernel may still wait for the GPU, must not be written before that kernel ran. 16
// JPEGs with different pixels, evaluated in batches of 4 while another thread keeps the GPU full
// of matrix products, must give the batches of an idle GPU, every time.
TEST(Nvjpeg, BatchesStayIntactBesideABusyGpu) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  std::vector<std::string> jpegs;
  for (int i = 0; i < 16; ++i)
    jpegs.push_back(read_text(std::string(VITLAB_FIXTURES) + "/nvjpeg/" + std::to_string(i) + ".jpg"));
  for (double hw_load : {1.0, 0.5}) {  // the hardware decoder alone; half of each batch on the hybrid one
    SCOPED_TRACE("data.hw_decoder_load " + std::to_string(hw_load));
    TempDir dir;
    ModelConfig m;
    m.in_chans = 3, m.image_size = 32, m.mean = {0.5}, m.std = {0.5};
    const Dataset d = jpeg_folder(dir.path, jpegs, m, 0.875, hw_load);
    const torch::Device cuda(torch::kCUDA, 0);
    auto epoch = [&] {
      auto loader = make_loader(d, torch::arange(d.size()), 4, false, LoaderOptions{cuda});
      std::vector<torch::Tensor> out;
      for (int64_t s = 0; s < loader->steps(); ++s) out.push_back(loader->batch(s).images.cpu());
      return torch::cat(out);  // (16, 3, 32, 32)
    };
    const torch::Tensor idle = epoch();
    for (int64_t i = 1; i < 16; ++i) ASSERT_FALSE(torch::equal(idle[i], idle[0])) << "fixture " << i << " repeats 0";
    std::atomic<bool> stop{false};
    // bf16 products of 4096 x 4096 on the default stream, which the loader's stream does not wait
    // for, 20 at a time (each group's sum read back keeps the queue short), until told to stop.
    std::thread load([&] {
      const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(cuda);
      auto a = torch::randn({4096, 4096}, bf16), b = torch::randn({4096, 4096}, bf16) / 64;  // keeps a's scale
      while (!stop) {
        for (int k = 0; k < 20; ++k) a = torch::matmul(a, b);
        a.sum().item<float>();
      }
    });
    int mixed = 0;
    for (int e = 0; e < 20; ++e) mixed += torch::equal(epoch(), idle) ? 0 : 1;
    stop = true;
    load.join();
    EXPECT_EQ(mixed, 0) << "epochs of 20 whose pixels differ from the idle GPU's";
  }
}
