#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>


#include "test_util.h"
#include "vitlab/data/augment.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/holdout.h"
#include "vitlab/data/loader.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/io/timm.h"

#ifdef VITLAB_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

std::string idx_images(const torch::Tensor& img) {  // (N, H, W) uint8
  std::string s = be32(0x803) + be32(img.size(0)) + be32(img.size(1)) + be32(img.size(2));
  auto c = img.contiguous();
  return s + std::string(reinterpret_cast<const char*>(c.data_ptr()), c.numel());
}

std::string idx_labels(const torch::Tensor& lab) {  // (N) uint8
  auto c = lab.contiguous();
  return be32(0x801) + be32(lab.size(0)) + std::string(reinterpret_cast<const char*>(c.data_ptr()), c.numel());
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), bytes.size());
  gzclose(f);
}

struct IdxFixture {
  torch::Tensor train_x = torch::randint(256, {20, 6, 5}, torch::kUInt8);
  torch::Tensor train_y = torch::randint(4, {20}, torch::kUInt8);
  torch::Tensor test_x = torch::randint(256, {7, 6, 5}, torch::kUInt8);
  torch::Tensor test_y = torch::randint(4, {7}, torch::kUInt8);
  void write(const std::string& prefix, bool gz) {
    auto w = [&](const std::string& name, const std::string& bytes) {
      gz ? write_gz(prefix + name + ".gz", bytes) : write_file(prefix + name, bytes);
    };
    w("train-images-idx3-ubyte", idx_images(train_x));
    w("train-labels-idx1-ubyte", idx_labels(train_y));
    w("t10k-images-idx3-ubyte", idx_images(test_x));
    w("t10k-labels-idx1-ubyte", idx_labels(test_y));
  }
  void check(const Splits& s) {
    EXPECT_TRUE(torch::equal(s.train.images.squeeze(1), train_x));
    EXPECT_TRUE(torch::equal(s.train.labels, train_y.to(torch::kLong)));
    EXPECT_TRUE(torch::equal(s.test.images.squeeze(1), test_x));
    EXPECT_TRUE(torch::equal(s.test.labels, test_y.to(torch::kLong)));
    EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{20, 1, 6, 5}));
  }
};

}  // namespace

TEST(Data, IdxPlainAndGzip) {
  for (bool gz : {false, true}) {
    TempDir dir;
    IdxFixture f;
    f.write(dir.path + "/", gz);
    f.check(load_idx(dir.path));
    // through a spec, with the validation hold-out (data/holdout.h) taken out of train
    DataConfig c;
    c.spec = "idx:" + dir.path;
    c.val_size = 5;
    Splits s = load_data(c);
    EXPECT_EQ(s.train.size(), 15);
    EXPECT_EQ(s.val.size(), 5);
    const HoldOut h = stratified_holdout(f.train_y.to(torch::kLong), 5, 0);
    EXPECT_TRUE(torch::equal(s.val.images.squeeze(1), f.train_x.index_select(0, h.val)));
    EXPECT_TRUE(torch::equal(s.train.labels, f.train_y.to(torch::kLong).index_select(0, h.train)));
  }
}

TEST(Data, IdxFilePrefix) {
  TempDir dir;
  IdxFixture f;
  f.write(dir / "emnist-x-", true);
  f.check(load_idx(dir / "emnist-x-"));
}

// The defect it replaces: "the last N" of a class-sorted list is whole classes. Here every class
// gives the same share, the split is seeded, disjoint and complete, and counts and fractions agree.
TEST(HoldOut, StratifiedSeededAndComplete) {
  auto labels = torch::arange(10, torch::kLong).repeat_interleave(400);  // class-sorted, 400 each
  const HoldOut a = stratified_holdout(labels, 400, 0);
  EXPECT_EQ(a.val.numel(), 400);
  EXPECT_TRUE(torch::equal(torch::bincount(labels.index_select(0, a.val)), torch::full({10}, 40, torch::kLong)));
  auto all = std::get<0>(torch::cat({a.train, a.val}).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(4000, torch::kLong)));
  EXPECT_TRUE(torch::equal(stratified_holdout(labels, 0.1, 0).val, a.val));  // 10% of 4000
  EXPECT_TRUE(torch::equal(stratified_holdout(labels, 400, 0).val, a.val));   // seeded
  EXPECT_FALSE(torch::equal(stratified_holdout(labels, 400, 1).val, a.val));
  // Unequal classes: shares by largest remainder, adding up exactly.
  auto uneven = torch::cat({torch::zeros({7}, torch::kLong), torch::ones({3}, torch::kLong), torch::full({5}, 2, torch::kLong)});
  const HoldOut u = stratified_holdout(uneven, 4, 3);
  EXPECT_TRUE(torch::equal(torch::bincount(uneven.index_select(0, u.val), {}, 3), torch::tensor({2, 1, 1})));
  EXPECT_EQ(error_of([&] { stratified_holdout(uneven, 15, 0); }),
            "data.val_size: 15 holds out 15 of the 15 training images and leaves none to train on (a fraction such as "
            "0.1 holds out that share of any data)");
  EXPECT_NE(error_of([&] { stratified_holdout(torch::tensor({0, 0, 0, 0, 0, 1}), 5, 0); }).find("all 1 training images of class 1"),
            std::string::npos);
}

// The default (10%) works for small data, where "5000" did not.
TEST(HoldOut, DefaultFitsSmallData) {
  DataConfig c;
  c.spec = "synthetic";
  Splits s = load_data(c);
  EXPECT_EQ(s.val.size(), 300);
  EXPECT_EQ(s.train.size(), 2700);
  EXPECT_EQ(s.describe()["holdout"]["val_size"], 0.1);
  c.val_size = 1.5;
  EXPECT_NE(error_of([&] { c.validate(); }).find("data.val_size: must be a count"), std::string::npos);
}

TEST(Data, IdxBrokenFilesAreNamed) {
  TempDir dir;
  IdxFixture f;
  f.write(dir.path + "/", false);
  const std::string images = dir / "train-images-idx3-ubyte";
  const std::string full = idx_images(f.train_x);
  write_file(images, full.substr(0, full.size() - 7));  // truncated
  EXPECT_EQ(error_of([&] { load_idx(dir.path); }), images + ": truncated file while reading the data");
  write_file(images, be32(0x1234) + full.substr(4));  // bad magic
  EXPECT_NE(error_of([&] { load_idx(dir.path); }).find(images + ": not an IDX file"), std::string::npos);
  write_file(images, full + "xx");  // trailing garbage
  EXPECT_NE(error_of([&] { load_idx(dir.path); }).find("trailing bytes"), std::string::npos);
  ::unlink(images.c_str());  // missing
  EXPECT_NE(error_of([&] { load_idx(dir.path); }).find("missing file " + dir.path + "/train-images-idx3-ubyte"),
            std::string::npos);
  // a gzip stream with a corrupted body
  write_gz(images + ".gz", full);
  std::string gz = vitlab::test::run("cat " + images + ".gz").text;
  for (size_t i = 20; i < gz.size() - 8; i += 3) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  write_file(images + ".gz", gz);
  EXPECT_NE(error_of([&] { load_idx(dir.path); }).find(images + ".gz: "), std::string::npos);
  // labels that disagree with the images
  write_file(images, full);
  ::unlink((images + ".gz").c_str());
  write_file(dir / "train-labels-idx1-ubyte", idx_labels(f.train_y.slice(0, 10)));
  EXPECT_NE(error_of([&] { load_idx(dir.path); }).find("has 10 labels but"), std::string::npos);
}

static std::string cifar_records(const torch::Tensor& x, const torch::Tensor& y, int label_bytes) {
  std::string s;
  for (int64_t i = 0; i < x.size(0); ++i) {
    if (label_bytes == 2) s += char(y[i].item<int>() / 5);  // coarse label
    s += char(y[i].item<int>());
    auto c = x[i].contiguous();
    s.append(reinterpret_cast<const char*>(c.data_ptr()), 3072);
  }
  return s;
}

TEST(Data, Cifar10And100) {
  for (int classes : {10, 100}) {
    TempDir dir;
    std::vector<torch::Tensor> xs, ys;
    auto make = [&](const std::string& name, int n) {
      auto x = torch::randint(256, {n, 3, 32, 32}, torch::kUInt8);
      auto y = torch::randint(classes, {n}, torch::kLong);
      write_file(dir / name, cifar_records(x, y, classes == 10 ? 1 : 2));
      return std::make_pair(x, y);
    };
    std::vector<std::pair<torch::Tensor, torch::Tensor>> train;
    if (classes == 10)
      for (int i = 1; i <= 5; ++i) train.push_back(make("data_batch_" + std::to_string(i) + ".bin", 3));
    else
      train.push_back(make("train.bin", 15));
    auto test = make(classes == 10 ? "test_batch.bin" : "test.bin", 4);
    Splits s = load_cifar(dir.path, classes);
    std::vector<torch::Tensor> tx, ty;
    for (auto& [x, y] : train) tx.push_back(x), ty.push_back(y);
    EXPECT_TRUE(torch::equal(s.train.images, torch::cat(tx)));
    EXPECT_TRUE(torch::equal(s.train.labels, torch::cat(ty)));
    EXPECT_TRUE(torch::equal(s.test.images, test.first));
    EXPECT_TRUE(torch::equal(s.test.labels, test.second));
    EXPECT_EQ(s.num_classes, classes);
  }
}

TEST(Data, CifarBrokenFilesAreNamed) {
  TempDir dir;
  auto x = torch::randint(256, {2, 3, 32, 32}, torch::kUInt8);
  write_file(dir / "train.bin", cifar_records(x, torch::tensor({1, 2}), 2));
  write_file(dir / "test.bin", cifar_records(x, torch::tensor({1, 2}), 2).substr(0, 5000));  // truncated
  EXPECT_NE(error_of([&] { load_cifar(dir.path, 100); }).find(dir / "test.bin" + ": 5000 bytes is not a whole number"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_cifar(dir.path, 10); }).find("data_batch_1.bin: missing"), std::string::npos);
  std::string bad = cifar_records(x, torch::tensor({1, 2}), 2);
  bad[1] = char(150);  // fine label out of range
  write_file(dir / "test.bin", bad);
  EXPECT_NE(error_of([&] { load_cifar(dir.path, 100); }).find("has label 150"), std::string::npos);
}

TEST(Data, SyntheticIsSeededAndShaped) {
  SyntheticConfig c;
  c.train = 100, c.test = 30, c.classes = 5, c.image_size = 12, c.channels = 3;
  Splits a = make_synthetic(c), b = make_synthetic(c);
  EXPECT_TRUE(torch::equal(a.train.images, b.train.images));
  EXPECT_TRUE(torch::equal(a.test.labels, b.test.labels));
  EXPECT_EQ(a.train.images.sizes(), (std::vector<int64_t>{100, 3, 12, 12}));
  c.seed = 99;
  EXPECT_FALSE(torch::equal(make_synthetic(c).train.images, a.train.images));
}

TEST(Data, UnknownSpecAndFitChecks) {
  DataConfig c;
  c.spec = "imagenet";
  EXPECT_NE(error_of([&] { load_data(c); }).find("data.spec: unknown dataset 'imagenet'"), std::string::npos);
  c.spec = "synthetic";
  c.val_size = 100;
  Splits s = load_data(c);
  EXPECT_EQ(s.val.size(), 100);
  ModelConfig m;
  m.in_chans = 3;
  EXPECT_NE(error_of([&] { check_data_fits_model(s, m); }).find("set model.in_chans=1"), std::string::npos);
  c.image_size = 14;  // resize on load
  EXPECT_EQ(load_data(c).train.images.size(3), 14);
}

TEST(Augment, CropIsAShiftedWindowOfThePaddedImage) {
  torch::manual_seed(3);
  auto x = torch::randint(1, 256, {16, 2, 7, 9}, torch::kUInt8);
  auto y = random_crop(x, 2);
  ASSERT_EQ(y.sizes(), x.sizes());
  auto padded = torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({2, 2, 2, 2}));
  for (int64_t i = 0; i < 16; ++i) {
    bool found = false;
    for (int dy = 0; dy <= 4 && !found; ++dy)
      for (int dx = 0; dx <= 4 && !found; ++dx)
        found = torch::equal(padded[i].slice(1, dy, dy + 7).slice(2, dx, dx + 9), y[i]);
    EXPECT_TRUE(found) << "image " << i;
  }
}

TEST(Augment, MixedTargetsStayDistributions) {
  torch::manual_seed(0);
  ModelConfig m;
  TrainConfig t;
  t.augment.mixup_alpha = 0.8;
  t.augment.cutmix_alpha = 1.0;
  t.augment.flip = true;
  auto images = torch::randint(256, {8, 1, 28, 28}, torch::kUInt8);
  auto labels = torch::randint(10, {8}, torch::kLong);
  for (int i = 0; i < 10; ++i) {
    Batch b = augment_batch(images, labels, m, t);
    EXPECT_EQ(b.x.sizes(), images.sizes());
    EXPECT_TRUE(torch::allclose(b.targets.sum(1), torch::ones({8})));
    EXPECT_GE(b.targets.min().item<float>(), 0.0f);
  }
  auto s = smooth_targets(torch::tensor({2}), 4, 0.1);
  EXPECT_TRUE(torch::allclose(s, torch::tensor({{0.025f, 0.025f, 0.925f, 0.025f}})));
}

// timm's RandomErasing: with probability 1 every image gets one rectangle of 2-33% of its area
// (const mode: zeros), with probability 0 none; per-pixel mode fills it with fresh noise.
TEST(Augment, RandomErasingRectangles) {
  torch::manual_seed(1);
  auto x = torch::ones({64, 3, 20, 24});
  auto y = random_erasing(x, 1.0, "const", 1);
  auto erased = y.eq(0).all(1).sum({1, 2}).to(torch::kDouble) / (20 * 24);  // (64) area fractions
  EXPECT_GE(erased.min().item<double>(), 0.015);
  EXPECT_LE(erased.max().item<double>(), 0.34);
  EXPECT_TRUE(torch::equal(y.eq(0).any(1), y.eq(0).all(1)));  // every channel of a pixel together
  EXPECT_TRUE(torch::equal(random_erasing(x, 0.0, "const", 1), x));
  auto p = random_erasing(x, 1.0, "pixel", 3);
  const auto changed = p.ne(1);
  EXPECT_GT(changed.sum().item<int64_t>(), 0);
  EXPECT_GT(p.masked_select(changed).std().item<double>(), 0.5);  // normal noise, not a constant
}

// timm's evaluation geometry (torchvision Resize(int) then CenterCrop), checked where the result
// is known exactly: a resize that is a no-op leaves only the crop, and the offsets round as
// Python does.
TEST(Data, ResizeByCropPctThenCentreCrop) {
  auto img = torch::arange(2 * 4 * 9, torch::kLong).reshape({1, 2, 4, 9}).to(torch::kUInt8);  // (1, C, H, W)
  // crop_pct 1, size 4: the shorter side is already 4, so only the centre 4 x 4 crop, offset
  // round((9 - 4) / 2) = round(2.5) = 2 (half to even).
  auto out = resize_images(img, 4, 1.0, "bicubic");
  EXPECT_TRUE(torch::equal(out, img.slice(3, 2, 6)));
  // crop_pct 0.5, size 2: the shorter side to floor(2 / 0.5) = 4 (no-op), the crop 2 x 2 at (1, 4).
  EXPECT_TRUE(torch::equal(resize_images(img, 2, 0.5, "bilinear"), img.slice(2, 1, 3).slice(3, 4, 6)));
  // A real resize: constant images stay constant, the shape is the crop's, portrait too.
  auto flat = torch::full({3, 3, 30, 20}, 77, torch::kUInt8);
  EXPECT_TRUE(torch::equal(resize_images(flat, 16, 0.875, "bicubic"), torch::full({3, 3, 16, 16}, 77, torch::kUInt8)));
  EXPECT_EQ(resize_images(flat, 16, 0.0, "bicubic").sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
}

#ifdef VITLAB_HAVE_OPENCV
// The same transform against timm's own (PIL) on the committed parity fixture's images, of
// sizes unlike the model's: a folder streamed through the evaluation transform.
TEST(Data, TimmEvalTransformMatchesTimmsPixels) {
  int checked = 0;
  const std::string root = std::string(VITLAB_FIXTURES) + "/timm";
  for (const auto& name : list_directory(root)) {
    const std::string dir = join_path(root, name);
    if (!is_directory(join_path(dir, "images"))) continue;
    torch::Tensor pixels;
    for (auto& [key, t] : load_safetensors(join_path(dir, "expected.safetensors")))
      if (key == "pixels") pixels = t;
    ASSERT_TRUE(pixels.defined()) << dir;
    DataConfig dc;
    dc.spec = "folder:" + join_path(dir, "images");
    dc.val_size = 0;
    dc.image_size = static_cast<int>(pixels.size(-1));
    apply_timm_eval_transform(read_json_file(join_path(dir, "config.json")), "config.json", dc);
    const Dataset test = decode_all(load_data(dc).test);
    ASSERT_EQ(test.images.sizes(), pixels.sizes()) << dir;
    // PIL's own arithmetic (data/transform.h): every pixel exact.
    EXPECT_TRUE(torch::equal(test.images, pixels)) << dir;
    ++checked;
  }
  EXPECT_GE(checked, 1) << "no fixture with images under " << root;
}

#endif
