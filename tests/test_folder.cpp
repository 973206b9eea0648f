// Image folders: listing, PIL-exact transforms against PIL / torchvision fixtures, the streamed
// loader's determinism, channels and class names that follow the model, bad images.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <random>

#include "test_util.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/data/transform.h"
#include "vitlab/config.h"
#include "vitlab/io/files.h"
#include "vitlab/train/distributed.h"

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

const std::string kFixtures = std::string(VITLAB_FIXTURES) + "/transforms";

struct Pixels {
  std::vector<uint8_t> data;
  int h = 0, w = 0, c = 0;
  Image8 view() const { return {data.data(), h, w, c, static_cast<int64_t>(w) * c}; }
};

Pixels decode(const std::string& path, int channels) {
  Pixels p;
  p.c = channels;
  std::string error;
  EXPECT_TRUE(decode_image_file(path, channels, p.data, p.h, p.w, error)) << error;
  return p;
}

// A class-sorted folder root/<class>/<i>.png of `per_class` small images per class: grey ones
// of level 20 c + i, or colour ones with B = 20 c + i, G = 90 and R = 200 plus a diagonal
// ramp in G, so that different crops differ.
void write_folder(const std::string& root, const std::vector<std::string>& classes, int per_class, int size = 12,
                  bool colour = false) {
  for (size_t c = 0; c < classes.size(); ++c) {
    const std::string dir = join_path(root, classes[c]);
    make_directories(dir);
    for (int i = 0; i < per_class; ++i) {
      cv::Mat img(size, size + 2, colour ? CV_8UC3 : CV_8UC1, cv::Scalar(static_cast<double>(c * 20 + i), 90, 200));
      if (colour)
        for (int y = 0; y < img.rows; ++y)
          for (int x = 0; x < img.cols; ++x) img.at<cv::Vec3b>(y, x)[1] = static_cast<uchar>(90 - (x + y));
      cv::imwrite(join_path(dir, std::to_string(i) + ".png"), img);
    }
  }
}

// A folder read whole (no hold-out) for an RGB model of size x size, trained with
// RandomResizedCrop.
struct Streamed {
  DataConfig data;
  ModelConfig model;
  AugmentConfig augment;
};
Streamed streamed_rgb(const std::string& dir, int size) {
  Streamed s;
  s.data.spec = "folder:" + dir;
  s.data.val_size = 0;
  s.model.in_chans = 3, s.model.image_size = size, s.model.mean = {0.5}, s.model.std = {0.5};
  s.augment.rrc = true;
  return s;
}

}  // namespace

// Every case of the fixture (made by PIL and torchvision from the same lossless source) is
// reproduced byte for byte: torchvision's resized_crop (RandomResizedCrop's pixels for a box)
// with both filters, shrinking and enlarging, RGB and L, and timm's evaluation transform.
TEST(Transform, ResizedCropAndEvalTransformEqualPilsPixels) {
  const json cases = read_json_file(join_path(kFixtures, "cases.json"));
  int checked = 0;
  for (const auto& k : cases["cases"]) {
    const int channels = k["channels"];
    const Pixels src = decode(join_path(kFixtures, "source.png"), channels);
    const Pixels want = decode(join_path(kFixtures, k["name"].get<std::string>() + ".png"), channels);
    const bool bicubic = k["interpolation"] == "bicubic";
    std::vector<uint8_t> got;
    const int size = k["size"];
    if (k.contains("box")) {
      const CropBox box{k["box"][0], k["box"][1], k["box"][2], k["box"][3]};
      pil_resize(crop_view(src.view(), box), size, size, bicubic, got);
    } else {
      const EvalGeometry g = eval_geometry(src.h, src.w, size, k["crop_pct"]);
      std::vector<uint8_t> resized;
      pil_resize(src.view(), g.resize_h, g.resize_w, bicubic, resized);
      const Image8 r{resized.data(), g.resize_h, g.resize_w, channels, static_cast<int64_t>(g.resize_w) * channels};
      const Image8 c = crop_view(r, g.crop);
      for (int y = 0; y < size; ++y) got.insert(got.end(), c.data + y * c.stride, c.data + y * c.stride + size * channels);
    }
    ASSERT_EQ(want.h, size);
    ASSERT_EQ(got.size(), want.data.size()) << k["name"];
    int64_t differing = 0;
    for (size_t i = 0; i < got.size(); ++i) differing += got[i] != want.data[i];
    EXPECT_EQ(differing, 0) << k["name"] << ": " << differing << " of " << got.size() << " bytes differ from PIL's";
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

// timm's RandomResizedCrop geometry: every box lies inside the image; boxes from the sampling
// loop have an area fraction in `scale` and an aspect ratio in `ratio` (up to rounding); an
// impossible request falls back to the centre crop of the nearest ratio.
TEST(Transform, RandomResizedCropBoxes) {
  std::mt19937_64 rng(1);
  const std::vector<double> scale{0.08, 1.0}, ratio{0.75, 4.0 / 3.0};
  double min_frac = 1, max_frac = 0;
  for (int i = 0; i < 2000; ++i) {
    const int h = 50 + i % 300, w = 60 + (i * 7) % 400;
    const CropBox b = random_resized_crop_box(h, w, scale, ratio, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    ASSERT_GT(b.height * b.width, 0);
    const double frac = static_cast<double>(b.height) * b.width / (static_cast<double>(h) * w);
    min_frac = std::min(min_frac, frac), max_frac = std::max(max_frac, frac);
    const double r = static_cast<double>(b.width) / b.height;
    if (b.height != h || b.width != w) EXPECT_TRUE(r > 0.6 && r < 1.6) << r;
  }
  EXPECT_LT(min_frac, 0.1);
  EXPECT_GT(max_frac, 0.9);
  // A 10 x 100 strip cannot hold a crop of ratio <= 4/3 and >= 8% of its area: the centre
  // crop of ratio 4/3 and full height.
  const CropBox f = random_resized_crop_box(10, 100, {0.5, 1.0}, ratio, rng);
  EXPECT_EQ(f.height, 10);
  EXPECT_EQ(f.width, 13);
  EXPECT_EQ(f.left, (100 - 13) / 2);
}

// A folder is listed, not decoded; it is decoded to the model's channels and size; its class
// names come along; files that are not images are ignored; the hold-out is stratified.
TEST(Folder, ListsAndFollowsTheModel) {
  TempDir dir;
  const std::vector<std::string> classes{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
  write_folder(dir / "train", classes, 10);
  write_folder(dir / "val", {"c3", "c7"}, 2);
  write_file(dir / "train/c0/notes.txt", "not an image");
  write_file(dir / "train/c0/.hidden.png", "not listed either");
  DataConfig dc;
  dc.spec = "folder:" + dir.path;
  dc.val_size = 0.2;
  ModelConfig grey;  // 28 x 28, one channel
  Splits s = load_data(dc, &grey);
  EXPECT_TRUE(s.train.streamed());
  EXPECT_FALSE(s.train.images.defined());  // nothing decoded yet
  EXPECT_EQ(s.class_names, classes);
  EXPECT_EQ(s.train.size(), 80);
  EXPECT_EQ(s.val.size(), 20);
  EXPECT_TRUE(torch::equal(torch::bincount(s.val.labels), torch::full({10}, 2, torch::kLong)));  // every class
  EXPECT_EQ(s.test.size(), 4);
  EXPECT_TRUE(torch::equal(s.test.labels, torch::tensor({3, 3, 7, 7})));  // by name, not by position
  EXPECT_EQ(s.channels(), 1);
  EXPECT_EQ(s.image_size(), 28);
  Dataset test = decode_all(s.test);
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
  // val/c7/0.png was written second, as grey 20: resized, still 20 (the pixels follow the file).
  EXPECT_EQ(test.images[2].to(torch::kDouble).mean().item<double>(), 20);
  ModelConfig rgb;
  rgb.in_chans = 3, rgb.image_size = 12, rgb.mean = {0.5}, rgb.std = {0.5};
  Dataset test3 = decode_all(load_data(dc, &rgb).test);
  EXPECT_EQ(test3.images.sizes(), (std::vector<int64_t>{4, 3, 12, 12}));
  EXPECT_TRUE(torch::equal(test3.images.select(1, 0), test3.images.select(1, 2)));  // grey replicated
  // An evaluation folder with a class the model does not know is an error naming it.
  write_folder(dir / "val", {"zebra"}, 1);
  rgb.label_names = classes, rgb.num_classes = 10;
  EXPECT_NE(error_of([&] { load_data(dc, &rgb); }).find("val/zebra: class folder 'zebra' is not one of the 10 classes"),
            std::string::npos);
}

// Batches do not depend on the number of workers: each image's crop comes from (seed, epoch,
// index). Another epoch draws other crops; the evaluation transform has no randomness.
TEST(Folder, StreamedBatchesAreTheSameWhateverTheWorkers) {
  TempDir dir;
  write_folder(dir.path, {"a", "b", "c"}, 7, 20, /*colour=*/true);
  Streamed st = streamed_rgb(dir.path, 8);
  DataConfig& dc = st.data;
  ModelConfig& m = st.model;
  AugmentConfig& aug = st.augment;
  auto batches = [&](int workers, int64_t epoch) {
    dc.workers = workers;
    Dataset d = load_data(dc, &m).test;
    torch::manual_seed(5);
    auto order = torch::randperm(d.size(), torch::kLong);
    auto loader = make_loader(d, order, 4, /*drop_last=*/true, LoaderOptions{torch::kCPU, &aug, 11, epoch});
    std::vector<Dataset> out;
    for (int64_t s = 0; s < loader->steps(); ++s) out.push_back(loader->batch(s));
    EXPECT_EQ(out.size(), 5u);
    for (int64_t s = 0; s < loader->steps(); ++s)  // labels follow the order
      EXPECT_TRUE(torch::equal(out[s].labels, d.labels.index_select(0, order.slice(0, 4 * s, 4 * s + 4))));
    return out;
  };
  auto one = batches(1, 0), three = batches(3, 0), next = batches(3, 1);
  bool differs = false;
  for (size_t s = 0; s < one.size(); ++s) {
    EXPECT_EQ(one[s].images.sizes(), (std::vector<int64_t>{4, 3, 8, 8}));
    EXPECT_TRUE(torch::equal(one[s].images, three[s].images)) << "batch " << s;
    differs |= !torch::equal(one[s].images, next[s].images);
  }
  EXPECT_TRUE(differs) << "epoch 1 drew the crops of epoch 0";
  // RGB order: OpenCV wrote B = 20 c + i, G = 90, R = 200.
  EXPECT_EQ(one[0].images.select(1, 0).min().item<int>(), 200);
  EXPECT_LE(one[0].images.select(1, 1).max().item<int>(), 90);
  EXPECT_GE(one[0].images.select(1, 1).min().item<int>(), 50);
  EXPECT_LE(one[0].images.select(1, 2).max().item<int>(), 46);
}

// data.reduced_decode: a JPEG whose crop is several times the output decodes at 1/2 .. 1/8 scale
// (libjpeg's DCT scaling); the crop box scales with it, so the batch is nearly the full decode's.
TEST(Folder, ReducedJpegDecode) {
  TempDir dir;
  for (const std::string c : {"a", "b"}) {
    make_directories(dir / c);
    for (int i = 0; i < 4; ++i) {
      cv::Mat img(200, 256, CV_8UC3);
      for (int y = 0; y < img.rows; ++y)
        for (int x = 0; x < img.cols; ++x)
          img.at<cv::Vec3b>(y, x) =
              cv::Vec3b(static_cast<uchar>(x / 2 + 10 * i), static_cast<uchar>(y), c == "a" ? 40 : 200);
      cv::imwrite(dir / (c + "/" + std::to_string(i) + ".jpg"), img, {cv::IMWRITE_JPEG_QUALITY, 95});
    }
  }
  const std::string bytes = read_text(dir / "a/0.jpg");
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  int h = 0, w = 0;
  ASSERT_TRUE(jpeg_size(u, bytes.size(), h, w));
  EXPECT_EQ(h, 200);
  EXPECT_EQ(w, 256);
  EXPECT_FALSE(jpeg_size(u, 20, h, w));  // cut before the frame header
  const std::string png = read_text(join_path(kFixtures, "source.png"));
  EXPECT_FALSE(jpeg_size(reinterpret_cast<const unsigned char*>(png.data()), png.size(), h, w));
  Pixels p;
  std::string error;
  int asked_h = 0, asked_w = 0;
  ASSERT_TRUE(decode_image_file(dir / "a/0.jpg", 3, p.data, p.h, p.w, error, [&](int fh, int fw) {
    asked_h = fh, asked_w = fw;
    return 4;
  })) << error;
  EXPECT_EQ(asked_h, 200);
  EXPECT_EQ(asked_w, 256);
  EXPECT_EQ(p.h, 50);
  EXPECT_EQ(p.w, 64);

  Streamed st = streamed_rgb(dir.path, 24);
  DataConfig& dc = st.data;
  ModelConfig& m = st.model;
  AugmentConfig& aug = st.augment;
  aug.scale = {0.5, 1.0};  // boxes of 130 px and more: 1/4 scale for 96 .. 191, 1/8 from 192
  auto first = [&](bool reduced) {
    dc.reduced_decode = reduced;
    Dataset d = load_data(dc, &m).test;
    auto loader = make_loader(d, torch::arange(d.size()), 8, true, LoaderOptions{torch::kCPU, &aug, 3, 0});
    return loader->batch(0).images.to(torch::kFloat);
  };
  auto full = first(false), reduced = first(true);
  const double diff = (full - reduced).abs().mean().item<double>();
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 3.0) << "the reduced decode's crop is not the full decode's";
}

// A broken image met mid-epoch: an error naming it, or skipped and counted. In training its
// place goes to the next image (the batch keeps its shape); in evaluation it is left out.
TEST(Folder, BadImagesAreNamedOrSkipped) {
  TempDir dir;
  write_folder(dir.path, {"a", "b"}, 6);
  cv::Mat img(16, 16, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uchar> jpeg;
  cv::imencode(".jpg", img, jpeg);
  write_file(dir / "a/cut.jpg", std::string(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));  // truncated
  write_file(dir / "b/junk.png", "not a png");
  DataConfig dc;
  dc.spec = "folder:" + dir.path;
  dc.val_size = 0;
  ModelConfig m;
  m.image_size = 8;
  Dataset d = load_data(dc, &m).test;
  ASSERT_EQ(d.size(), 14);
  EXPECT_NE(error_of([&] { decode_all(d); }).find(dir / "a/cut.jpg: truncated JPEG"), std::string::npos);
  dc.skip_bad_images = true;
  d = load_data(dc, &m).test;
  auto eval = make_loader(d, torch::arange(14), 14, false);
  Dataset b = eval->batch(0);
  EXPECT_EQ(b.size(), 12);
  EXPECT_EQ(eval->skipped(), 2);
  AugmentConfig aug;
  auto train = make_loader(d, torch::arange(14), 7, true, LoaderOptions{torch::kCPU, &aug, 0, 0});
  EXPECT_EQ(train->batch(0).size(), 7);
  EXPECT_EQ(train->batch(1).size(), 7);
  EXPECT_EQ(train->skipped(), 2);
}

// Every format a folder lists is sized from its header before OpenCV decodes it (which would
// allocate whatever a header claims, up to 2^30 pixels): a BMP of a few bytes that claims
// 20000 x 20000 pixels is refused by name, as are formats the folder loader does not list.
TEST(Folder, ImagesAreSizedFromTheirHeadersBeforeDecoding) {
  TempDir dir;
  cv::Mat img(13, 21, CV_8UC3, cv::Scalar(10, 20, 30));
  for (const char* ext : {".jpg", ".png", ".bmp", ".ppm", ".tiff", ".webp"}) {
    std::vector<uchar> bytes;
    ASSERT_TRUE(cv::imencode(ext, img, bytes)) << ext;
    int64_t h = 0, w = 0;
    EXPECT_TRUE(image_header_size(bytes.data(), bytes.size(), h, w)) << ext;
    EXPECT_EQ(h, 13) << ext;
    EXPECT_EQ(w, 21) << ext;
    write_file(dir / (std::string("x") + ext), std::string(bytes.begin(), bytes.end()));
    EXPECT_EQ(decode(dir / (std::string("x") + ext), 3).h, 13) << ext;
  }
  std::vector<uchar> bmp;
  cv::imencode(".bmp", img, bmp);
  for (int at : {18, 22}) bmp[at] = 0x20, bmp[at + 1] = 0x4E, bmp[at + 2] = bmp[at + 3] = 0;  // 20000
  write_file(dir / "big.bmp", std::string(bmp.begin(), bmp.end()));
  Pixels p;
  std::string error;
  EXPECT_FALSE(decode_image_file(dir / "big.bmp", 3, p.data, p.h, p.w, error));
  EXPECT_EQ(error, dir / "big.bmp" + ": image of 20000 x 20000 pixels, over vitlab's limit of 2^26 (8192 x 8192)");
  write_file(dir / "x.gif", "GIF89a\x01\x00\x01\x00");
  EXPECT_FALSE(decode_image_file(dir / "x.gif", 3, p.data, p.h, p.w, error));
  EXPECT_NE(error.find("not a JPEG, PNG, BMP, PNM, TIFF or WebP"), std::string::npos) << error;
}

// As a user runs it: a class-sorted folder trained with RandomResizedCrop, RandAugment, colour
// jitter and random erasing and a stratified hold-out; kill -9 and --resume end bit for bit
// where the whole run ends; the checkpoint carries the class names, and vit_eval matches an
// evaluation folder's classes by name (a subset is fine, an unknown class is a one-line error);
// --class-map gives names to a checkpoint without them.
TEST(Folder, TrainResumeAndEvaluateByClassName) {
  using vitlab::test::run;
  const std::string train = VIT_TRAIN, eval = VIT_EVAL;
  TempDir dir;
  write_folder(dir / "data/train", {"ant", "bee", "cat"}, 20, 16, /*colour=*/true);
  write_folder(dir / "data/val", {"ant", "bee", "cat"}, 4, 16, true);
  const json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"in_chans", 3}, {"num_classes", 3}, {"dim", 32},
                            {"depth", 1}, {"heads", 2}}},
                 {"data", {{"spec", "folder:" + dir / "data"}, {"val_size", 0.2}, {"workers", 2}}},
                 {"train", {{"epochs", 4}, {"batch_size", 8}, {"threads", 1},
                            {"augment", {{"rrc", true}, {"flip", true}, {"re_prob", 0.5}, {"re_mode", "pixel"},
                                         {"auto_augment", "rand-m9-mstd0.5-inc1"}, {"color_jitter", 0.4}}}}}};
  write_file(dir / "c.json", cfg.dump());
  const std::string args = " --config " + dir / "c.json" + " --out ";
  auto full = run(train + args + dir / "full");
  ASSERT_EQ(full.status, 0) << full.text;
  const json r = read_json_file(dir / "full/result.json");
  EXPECT_EQ(r["data"]["train_size"], 48);
  EXPECT_EQ(r["data"]["val_size"], 12);
  EXPECT_EQ(r["data"]["holdout"]["val_size"], 0.2);
  EXPECT_EQ(r["data"]["streamed"], true);
  EXPECT_EQ(r["data"]["skipped_images"], 0);
  EXPECT_EQ(r["model"]["label_names"], json({"ant", "bee", "cat"}));
  EXPECT_EQ(read_json_file(dir / "full/checkpoint/config.json")["label_names"], json({"ant", "bee", "cat"}));

  ASSERT_TRUE(vitlab::test::kill_train_when({"--config", dir / "c.json", "--out", dir / "killed"},
                                            dir / "killed/checkpoint/train_state.pt"));
  auto resumed = run(train + args + dir / "killed --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.text;
  const json back = read_json_file(dir / "killed/result.json");
  EXPECT_EQ(back["metrics"], r["metrics"]);
  for (size_t e = 0; e < r["history"].size(); ++e)
    EXPECT_EQ(back["history"][e]["train_loss"], r["history"][e]["train_loss"]) << "epoch " << e + 1;

  // Evaluation folders: a subset of the classes, in another order of folders, by name.
  write_folder(dir / "sub", {"cat"}, 3, 16, true);
  auto ev = run(eval + " --checkpoint " + dir / "full/checkpoint --data folder:" + dir / "sub --out " + dir / "e.json");
  ASSERT_EQ(ev.status, 0) << ev.text;
  const json e = read_json_file(dir / "e.json");
  EXPECT_EQ(e["metrics"]["images"], 3);
  EXPECT_EQ(e["metrics"]["confusion"][2].size(), 3u);
  EXPECT_EQ(e["metrics"]["confusion"][0], json({0, 0, 0}));  // every image is a cat (class 2)
  write_folder(dir / "sub", {"dog"}, 1, 16, true);
  auto bad = run(eval + " --checkpoint " + dir / "full/checkpoint --data folder:" + dir / "sub");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.text.rfind("vit_eval: error: " + dir / "sub/dog: class folder 'dog' is not one of", 0), 0u) << bad.text;

  // A checkpoint without names takes them from --class-map (timm's format, one a line).
  json ck = read_json_file(dir / "full/checkpoint/config.json");
  ck.erase("label_names");
  write_file(dir / "full/checkpoint/config.json", ck.dump());
  ::remove((dir / "sub/dog/0.png").c_str());
  ::rmdir((dir / "sub/dog").c_str());
  write_file(dir / "names.txt", "ant\nbee\ncat\n");
  auto mapped = run(eval + " --checkpoint " + dir / "full/checkpoint --class-map " + dir / "names.txt --data folder:" +
                    dir / "sub --out " + dir / "e2.json");
  ASSERT_EQ(mapped.status, 0) << mapped.text;
  EXPECT_EQ(read_json_file(dir / "e2.json")["metrics"]["confusion"], e["metrics"]["confusion"]);
  write_file(dir / "names.txt", "ant\nbee\n");
  auto short_map = run(eval + " --checkpoint " + dir / "full/checkpoint --class-map " + dir / "names.txt --data folder:" + dir / "sub");
  EXPECT_NE(short_map.text.find("has 2 class names but the checkpoint has 3 classes"), std::string::npos) << short_map.text;
}

// vit_bench --pipeline: the training loader alone, with the step's augmentation (here
// RandAugment, colour jitter and random erasing), and the evaluation loader, each timed, with
// where the loader's workers spent each batch.
TEST(Folder, PipelineBenchTimesEveryLoader) {
  TempDir dir;
  write_folder(dir / "data/train", {"a", "b"}, 24, 20, /*colour=*/true);
  write_folder(dir / "data/val", {"a", "b"}, 16, 20, true);
  const json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"in_chans", 3}, {"num_classes", 2}}},
                 {"train", {{"batch_size", 8}, {"threads", 1},
                            {"augment", {{"rrc", true}, {"crop_padding", 0}, {"auto_augment", "rand-m9-mstd0.5-inc1"},
                                         {"color_jitter", 0.4}, {"re_prob", 0.25}}}}}};
  write_file(dir / "c.json", cfg.dump());
  auto out = vitlab::test::run(std::string(VIT_BENCH) + " --config " + dir / "c.json --data folder:" + dir / "data" +
                 " --pipeline 3 --warmup 1 --device cpu --json " + dir / "p.json");
  ASSERT_EQ(out.status, 0) << out.text;
  const json r = read_json_file(dir / "p.json")["results"];
  for (const char* phase : {"train", "train_augmented", "eval"}) {
    EXPECT_EQ(r[phase]["batches"], 3) << phase;
    EXPECT_GT(r[phase]["images_per_s"].get<double>(), 0) << phase;
    const json& ms = r[phase]["loader_ms_per_batch"];
    EXPECT_EQ(ms.size(), 3u) << phase << " " << ms.dump();
    EXPECT_GT(ms["workers.decode"].get<double>(), 0) << phase;
  }
  EXPECT_NE(out.text.find("ms a batch by phase (summed over threads): workers.decode "), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("train_augmented"), std::string::npos) << out.text;
}

// vit_bench --data: the training step timed on one batch in memory and fed by the folder's
// training loader (here across an epoch's end: 6 steps an epoch, 7 run), with the share of the
// time spent waiting for batches and the loader's threads' time by phase; --data with inference
// alone is refused in one line.
TEST(Folder, BenchFeedsTheStepFromTheFolder) {
  TempDir dir;
  write_folder(dir / "data/train", {"a", "b"}, 24, 20, /*colour=*/true);
  write_folder(dir / "data/val", {"a", "b"}, 4, 20, true);
  const json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"in_chans", 3}, {"num_classes", 2}, {"dim", 32},
                            {"depth", 1}, {"heads", 2}}},
                 {"data", {{"val_size", 0}}},
                 {"train", {{"batch_size", 8}, {"threads", 1}, {"augment", {{"rrc", true}, {"crop_padding", 0}}}}}};
  write_file(dir / "c.json", cfg.dump());
  const std::string bench = std::string(VIT_BENCH) + " --config " + dir / "c.json --data folder:" + dir / "data";
  auto out = vitlab::test::run(bench + " --mode train --warmup 1 --windows 2 --window-steps 3 --device cpu --json " +
                               dir / "b.json");
  ASSERT_EQ(out.status, 0) << out.text;
  const json r = read_json_file(dir / "b.json")["results"][0];
  const json& fed = r["train_from_data"];
  EXPECT_EQ(fed["data"], "folder:" + dir / "data");
  EXPECT_EQ(fed["windows"].size(), 2u);
  EXPECT_GT(fed["images_per_s"].get<double>(), 0);
  EXPECT_GE(fed["data_wait_fraction"].get<double>(), 0);
  EXPECT_LE(fed["data_wait_fraction"].get<double>(), 1);
  EXPECT_NEAR(fed["vs_synthetic"].get<double>(),
              fed["images_per_s"].get<double>() / r["train"]["images_per_s"].get<double>(), 1e-9);
  EXPECT_NE(out.text.find("the same fed from --data"), std::string::npos) << out.text;
  // The CPU loader's workers: decoding takes time every step; each phase is a duration.
  const json& phases = fed["loader_ms_per_step"];
  ASSERT_EQ(phases.size(), 3u) << phases.dump();
  EXPECT_GT(phases["workers.decode"].get<double>(), 0);
  EXPECT_GT(phases["workers.transform"].get<double>(), 0);
  EXPECT_GE(phases["workers.wait_for_slot"].get<double>(), 0);
  EXPECT_NE(out.text.find("ms a step by phase (summed over threads): workers.decode "), std::string::npos) << out.text;
  vitlab::test::expect_one_line_error(vitlab::test::run(bench + " --mode infer --device cpu"), "vit_bench",
                                      "--data: times training");
}

// Data parallel from a streamed folder: each of two processes decodes only its half of every
// batch, its crops drawn from (seed, epoch, index) as one process draws them; with per-image
// augmentation only, the run equals one process on the whole batch up to summation order.
TEST(Folder, TwoProcessesEachDecodeTheirSlice) {
  if (!has_gloo() && !std::getenv("CI")) GTEST_SKIP() << "this build has no Gloo headers (Debian: libgloo-dev)";
  TempDir dir;
  write_folder(dir / "data/train", {"a", "b", "c"}, 16, 16, /*colour=*/true);
  write_folder(dir / "data/val", {"a", "b", "c"}, 4, 16, true);
  const json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"in_chans", 3}, {"num_classes", 3}, {"dim", 32},
                            {"depth", 1}, {"heads", 2}}},
                 {"data", {{"spec", "folder:" + dir / "data"}, {"val_size", 0.25}, {"workers", 2}}},
                 {"train", {{"epochs", 2}, {"batch_size", 8}, {"lr", 3e-3}, {"threads", 1}, {"eps", 0.01},
                            {"grad_clip", 0.0}, {"precision", "fp32"}, {"device", "cpu"},
                            {"augment", {{"rrc", true}, {"crop_padding", 0}}}}}};
  vitlab::test::expect_two_processes_match_one(cfg.dump(), "gloo");
}

