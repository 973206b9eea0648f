// Image folders in torchvision's ImageFolder / timm layout: root/<class>/<image>, class index =
// position in the sorted folder names (or in the model's label_names). root/train + root/val
// (or root/test) give the splits; a root without train/ is a test split only (for
// evaluation). Listed here, never decoded whole: data/stream.cpp decodes batch by batch.
#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>

#include "vitlab/data/dataset.h"
#include "vitlab/data/transform.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

#ifdef VITLAB_HAVE_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif

namespace vitlab {
namespace {

bool is_image(const std::string& name) {
  const std::string ext = extension_lower(name);
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp"})
    if (ext == e) return true;
  return false;
}

std::vector<std::string> class_folders(const std::string& root) {
  std::vector<std::string> names;
  for (const auto& n : list_directory(root))  // sorted
    if (n[0] != '.' && is_directory(join_path(root, n))) names.push_back(n);
  if (names.empty()) fail("folder:", root, ": no class folders (expected root/<class>/<image>)");
  return names;
}

// The image files of one class folder, sorted. readdir's d_type spares a stat per file, which
// keeps the listing of a million images to seconds; file systems that leave it unknown get one.
std::vector<std::string> image_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(dir, ": cannot read directory (", std::strerror(errno), ")");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' || !is_image(e->d_name)) continue;
    if (e->d_type == DT_REG || (e->d_type == DT_UNKNOWN && is_regular_file(join_path(dir, e->d_name))))
      names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Dataset list_split(const std::string& root, const std::vector<std::string>& classes, const ImageFiles& spec) {
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < classes.size(); ++i) index[classes[i]] = static_cast<int64_t>(i);
  auto files = std::make_shared<ImageFiles>(spec);
  std::vector<int64_t> labels;
  for (const auto& name : class_folders(root)) {
    auto it = index.find(name);
    if (it == index.end())
      fail(join_path(root, name), ": class folder '", name, "' is not one of the ", classes.size(),
           " classes of the model or training split (", classes.front(), ", ...)");
    const std::string dir = join_path(root, name);
    for (const auto& f : image_files(dir)) {
      files->paths.push_back(join_path(dir, f));
      labels.push_back(it->second);
    }
  }
  if (files->paths.empty()) fail("folder:", root, ": no images found");
  return {torch::Tensor(), torch::tensor(labels, torch::kLong), files};
}

}  // namespace

Splits load_image_folder(const std::string& dir, const DataConfig& cfg, int channels, int size,
                         const std::vector<std::string>& class_names) {
  if (!is_directory(dir)) fail("folder:", dir, ": not a directory");
  if (size <= 0) fail("folder:", dir, ": needs an image size (data.image_size, or the model's)");
  ImageFiles spec;
  spec.channels = channels;
  spec.size = size;
  spec.crop_pct = cfg.crop_pct;
  spec.crop_mode = cfg.crop_mode;
  spec.interpolation = cfg.interpolation;
  spec.skip_bad = cfg.skip_bad_images;
  spec.workers = cfg.workers;
  spec.decode = cfg.decode;
  spec.hw_decoder_load = cfg.hw_decoder_load;
  spec.reduced_decode = cfg.reduced_decode;
  Splits s;
  s.name = "folder:" + dir;
  s.source = dir;
  std::string test_root = dir;
  const bool has_train = is_directory(join_path(dir, "train"));
  if (!has_train && !is_directory(join_path(dir, "val")) && !is_directory(join_path(dir, "test"))) {
    bool subfolders = false;
    for (const auto& n : list_directory(dir)) subfolders |= n[0] != '.' && is_directory(join_path(dir, n));
    if (!subfolders && !image_files(dir).empty()) {  // plain images: answers without labels
      auto files = std::make_shared<ImageFiles>(spec);
      for (const auto& f : image_files(dir)) files->paths.push_back(join_path(dir, f));
      s.test = {torch::Tensor(), torch::zeros({static_cast<int64_t>(files->paths.size())}, torch::kLong), files};
      s.class_names = class_names;
      s.num_classes = static_cast<int64_t>(class_names.size());
      s.unlabelled = true;
      return s;
    }
  }
  s.class_names = !class_names.empty() ? class_names : class_folders(has_train ? join_path(dir, "train") : dir);
  if (has_train) {
    s.train = list_split(join_path(dir, "train"), s.class_names, spec);
    test_root = is_directory(join_path(dir, "val")) ? join_path(dir, "val") : join_path(dir, "test");
    if (!is_directory(test_root)) fail("folder:", dir, ": has train/ but neither val/ nor test/");
  }
  s.test = list_split(test_root, s.class_names, spec);
  s.num_classes = static_cast<int64_t>(s.class_names.size());
  return s;
}

std::vector<std::string> read_class_map(const std::string& path) {
  if (!is_regular_file(path)) fail(path, ": no such class map file");
  std::vector<std::string> names;
  std::string text = read_text(path), line;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    line = text.substr(start, end - start);
    const size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    names.push_back(a == std::string::npos ? "" : line.substr(a, b - a + 1));
    start = end + 1;
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) fail(path, ":", i + 1, ": empty class name");
    if (!seen.emplace(names[i], i).second)
      fail(path, ":", i + 1, ": class '", names[i], "' repeats line ", seen[names[i]] + 1);
  }
  if (names.empty()) fail(path, ": no class names");
  return names;
}

bool jpeg_size(const unsigned char* u, size_t n, int& h, int& w) {
  // Markers after SOI: each FF xx, then (except standalone markers) a 2-byte big-endian length
  // that counts itself. The frame header (SOF0-15, not DHT C4, JPG C8, DAC CC) holds precision,
  // height, width.
  size_t i = 2;
  while (i + 3 < n) {
    if (u[i] != 0xFF) return false;
    const unsigned char m = u[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {
      i += 2;
      continue;
    }
    const size_t len = static_cast<size_t>(u[i + 2]) << 8 | u[i + 3];
    if (len < 2) return false;
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (i + 8 >= n || len < 7) return false;
      h = u[i + 5] << 8 | u[i + 6];
      w = u[i + 7] << 8 | u[i + 8];
      return h > 0 && w > 0;
    }
    if (m == 0xDA || m == 0xD9) return false;  // scan data before any frame header
    i += 2 + len;
  }
  return false;
}

bool jpeg_complete(const unsigned char* u, size_t n) {
  for (size_t i = n >= 1024 ? n - 1024 : 0; i + 1 < n; ++i)
    if (u[i] == 0xFF && u[i + 1] == 0xD9) return true;
  return false;
}

namespace {

uint32_t be32(const unsigned char* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le32(const unsigned char* p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }
uint32_t le24(const unsigned char* p) { return uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }

// PNM's header: magic, then width and height as decimal text between whitespace and comments.
bool pnm_size(const unsigned char* u, size_t n, int64_t& h, int64_t& w) {
  size_t i = 2;
  int64_t v[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    while (i < n && (std::isspace(u[i]) || u[i] == '#'))
      if (u[i] == '#') while (i < n && u[i] != '\n') ++i;
      else ++i;
    if (i >= n || !std::isdigit(u[i])) return false;
    for (; i < n && std::isdigit(u[i]) && v[k] < (int64_t(1) << 40); ++i) v[k] = v[k] * 10 + (u[i] - '0');
  }
  w = v[0], h = v[1];
  return true;
}

// TIFF: the first directory's ImageWidth (256) and ImageLength (257), SHORT or LONG.
bool tiff_size(const unsigned char* u, size_t n, int64_t& h, int64_t& w) {
  const bool le = u[0] == 'I';
  auto u16 = [&](size_t at) { return le ? uint32_t(u[at]) | uint32_t(u[at + 1]) << 8 : uint32_t(u[at]) << 8 | u[at + 1]; };
  auto u32 = [&](size_t at) { return le ? le32(u + at) : be32(u + at); };
  const size_t ifd = u32(4);
  if (ifd + 2 > n) return false;
  const size_t count = u16(ifd);
  h = w = -1;
  for (size_t e = 0; e < count && ifd + 2 + 12 * (e + 1) <= n; ++e) {
    const size_t at = ifd + 2 + 12 * e;
    const uint32_t tag = u16(at), type = u16(at + 2);
    const int64_t value = type == 3 ? u16(at + 8) : u32(at + 8);
    if (tag == 256) w = value;
    if (tag == 257) h = value;
  }
  return h >= 0 && w >= 0;
}

}  // namespace

bool image_header_size(const unsigned char* u, size_t n, int64_t& h, int64_t& w) {
  int jh = 0, jw = 0;
  if (n >= 2 && u[0] == 0xFF && u[1] == 0xD8) {
    if (!jpeg_size(u, n, jh, jw)) return false;
    h = jh, w = jw;
    return true;
  }
  if (n >= 24 && std::memcmp(u, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(u + 12, "IHDR", 4) == 0) {
    w = be32(u + 16), h = be32(u + 20);
    return true;
  }
  if (n >= 26 && u[0] == 'B' && u[1] == 'M') {
    if (le32(u + 14) == 12) {  // OS/2's BITMAPCOREHEADER: 16-bit width and height
      w = u[18] | u[19] << 8, h = u[20] | u[21] << 8;
    } else {  // BITMAPINFOHEADER and later: signed 32-bit (a negative height is top-down)
      w = std::abs(int64_t(int32_t(le32(u + 18)))), h = std::abs(int64_t(int32_t(le32(u + 22))));
    }
    return true;
  }
  if (n >= 3 && u[0] == 'P' && u[1] >= '1' && u[1] <= '6') return pnm_size(u, n, h, w);
  if (n >= 8 && (std::memcmp(u, "II*\0", 4) == 0 || std::memcmp(u, "MM\0*", 4) == 0)) return tiff_size(u, n, h, w);
  if (n >= 30 && std::memcmp(u, "RIFF", 4) == 0 && std::memcmp(u + 8, "WEBP", 4) == 0) {
    if (std::memcmp(u + 12, "VP8 ", 4) == 0) w = (u[26] | u[27] << 8) & 0x3FFF, h = (u[28] | u[29] << 8) & 0x3FFF;
    else if (std::memcmp(u + 12, "VP8L", 4) == 0) {
      const uint32_t bits = le32(u + 21);
      w = (bits & 0x3FFF) + 1, h = (bits >> 14 & 0x3FFF) + 1;
    } else if (std::memcmp(u + 12, "VP8X", 4) == 0) {
      w = int64_t(le24(u + 24)) + 1, h = int64_t(le24(u + 27)) + 1;
    } else {
      return false;
    }
    return true;
  }
  return false;
}

#ifdef VITLAB_HAVE_OPENCV

bool decode_image_file(const std::string& path, int channels, std::vector<uint8_t>& pixels, int& h, int& w,
                       std::string& error, const std::function<int(int, int)>& reduce) {
  // The bytes first (one read), so that a JPEG cut short is seen: libjpeg pads it with grey
  // and only warns, where it must be an error like any unreadable file.
  std::string bytes;
  try {
    bytes = read_text(path);
  } catch (const Error& e) {
    error = e.what();
    return false;
  }
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  // The size the header claims, before OpenCV allocates it (it takes up to 2^30 pixels: a file of
  // a few bytes could cost gigabytes in every loader worker). Formats vitlab cannot size are
  // the ones its folders do not list.
  int64_t claimed_h = 0, claimed_w = 0;
  if (!image_header_size(u, bytes.size(), claimed_h, claimed_w)) {
    error = path + ": unreadable image (not a JPEG, PNG, BMP, PNM, TIFF or WebP)";
    return false;
  }
  if (claimed_h > kMaxImagePixels || claimed_w > kMaxImagePixels || claimed_h * claimed_w > kMaxImagePixels) {
    error = path + ": image of " + std::to_string(claimed_w) + " x " + std::to_string(claimed_h) +
            " pixels, over vitlab's limit of 2^26 (8192 x 8192)";
    return false;
  }
  int flags = cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION;
  if (bytes.size() >= 2 && u[0] == 0xFF && u[1] == 0xD8) {  // JPEG: its end-of-image marker must be there
    if (!jpeg_complete(u, bytes.size())) {
      error = path + ": truncated JPEG (no end-of-image marker)";
      return false;
    }
    if (reduce) {  // the frame header's size, read above (at most 2^26 pixels: an int)
      const int factor = reduce(static_cast<int>(claimed_h), static_cast<int>(claimed_w));
      if (factor == 2) flags |= cv::IMREAD_REDUCED_COLOR_2;
      else if (factor == 4) flags |= cv::IMREAD_REDUCED_COLOR_4;
      else if (factor == 8) flags |= cv::IMREAD_REDUCED_COLOR_8;
    }
  }
  cv::Mat img;
  try {
    img = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, bytes.data()), flags);
  } catch (const cv::Exception&) {
    img = cv::Mat();
  }
  if (img.empty() || img.type() != CV_8UC3) {
    error = path + ": unreadable image";
    return false;
  }
  h = img.rows;
  w = img.cols;
  const Image8 bgr{img.data, h, w, 3, static_cast<int64_t>(img.step[0])};
  if (channels == 1) {
    to_luma(bgr, /*bgr=*/true, pixels);
  } else {
    pixels.resize(static_cast<size_t>(h) * w * 3);
    for (int y = 0; y < h; ++y) std::memcpy(pixels.data() + static_cast<size_t>(y) * w * 3, img.ptr(y), static_cast<size_t>(w) * 3);
  }
  return true;
}

bool cpu_decoder_available() { return true; }

#else

bool decode_image_file(const std::string& path, int, std::vector<uint8_t>&, int&, int&, std::string& error,
                       const std::function<int(int, int)>&) {
  error = path + ": this vitlab was built without OpenCV";
  return false;
}

bool cpu_decoder_available() { return false; }

#endif

}  // namespace vitlab
