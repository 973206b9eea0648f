// MNIST-family IDX files (Fashion-MNIST, KMNIST, EMNIST), plain or gzip-compressed. zlib's
// gzread reads both, so no unpacked copy is ever needed.
#include <zlib.h>

#include <memory>
#include <vector>

#include "vitlab/data/dataset.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {
namespace {

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) fail(path, ": cannot open");
  }
  ~GzFile() { gzclose(f_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  void read(void* dst, size_t n, const char* what) {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
      int got = gzread(f_, p, chunk);
      if (got < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        fail(path_, ": corrupt file while reading ", what, " (", msg, ")");
      }
      if (got == 0) fail(path_, ": truncated file while reading ", what);
      p += got;
      n -= static_cast<size_t>(got);
    }
  }
  uint32_t read_u32(const char* what) {
    unsigned char b[4];
    read(b, 4, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }
  bool at_end() {
    char c;
    return gzread(f_, &c, 1) == 0;
  }

 private:
  std::string path_;
  gzFile f_;
};

// Reads one IDX file of unsigned bytes with `ndim` dimensions; returns dims and data.
torch::Tensor read_idx_ubyte(const std::string& path, int ndim, std::vector<int64_t>& dims) {
  GzFile f(path);
  const uint32_t magic = f.read_u32("the header");
  const uint32_t expected = 0x0800u | static_cast<uint32_t>(ndim);
  if (magic != expected) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad magic 0x%08x (expected 0x%08x, a %d-d IDX of ubyte)", magic, expected, ndim);
    fail(path, ": not an IDX file: ", buf);
  }
  dims.clear();
  int64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    dims.push_back(f.read_u32("the header"));
    if (dims.back() <= 0 || dims.back() > (1 << 28)) fail(path, ": implausible dimension ", dims.back());
    total *= dims.back();  // at most 2^34 * 2^28: no overflow before the check below
    if (total > (int64_t(1) << 34)) fail(path, ": implausible size of more than 2^34 bytes");
  }
  // Read in chunks of at most 64 MiB: a header that claims more than the file holds fails at the
  // file's end rather than first allocating all it claims.
  auto bytes = std::make_unique<std::vector<uint8_t>>();
  while (static_cast<int64_t>(bytes->size()) < total) {
    const size_t at = bytes->size(), n = std::min<size_t>(static_cast<size_t>(total) - at, size_t(1) << 26);
    bytes->resize(at + n);
    f.read(bytes->data() + at, n, "the data");
  }
  if (!f.at_end()) fail(path, ": trailing bytes after ", total, " bytes of data");
  auto* owner = bytes.release();
  return torch::from_blob(owner->data(), {total}, [owner](void*) { delete owner; }, torch::kUInt8);
}

std::string find_file(const std::string& prefix, std::initializer_list<const char*> stems) {
  for (const char* stem : stems)
    for (const char* ext : {"", ".gz"})
      if (path_exists(prefix + stem + ext)) return prefix + stem + ext;
  std::string tried;
  for (const char* stem : stems) tried += (tried.empty() ? "" : " or ") + prefix + stem + "[.gz]";
  // A prefix without '/' is a file-name prefix; say so, the commoner mistake is a wrong directory.
  if (prefix.empty() || prefix.back() != '/') fail("idx:", prefix, ": no such directory, and no file ", tried);
  fail("idx: missing file ", tried);
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  std::vector<int64_t> idims, ldims;
  auto images = read_idx_ubyte(images_path, 3, idims);
  auto labels = read_idx_ubyte(labels_path, 1, ldims);
  if (idims[0] != ldims[0])
    fail(labels_path, ": has ", ldims[0], " labels but ", images_path, " has ", idims[0], " images");
  return {images.view({idims[0], 1, idims[1], idims[2]}), labels.to(torch::kLong)};
}

Splits load_idx(const std::string& prefix_in) {
  std::string prefix = prefix_in;
  if (is_directory(prefix) && prefix.back() != '/') prefix += '/';
  Splits s;
  s.name = "idx:" + prefix_in;
  s.source = prefix_in;
  s.train = read_idx(find_file(prefix, {"train-images-idx3-ubyte"}), find_file(prefix, {"train-labels-idx1-ubyte"}));
  s.test = read_idx(find_file(prefix, {"t10k-images-idx3-ubyte", "test-images-idx3-ubyte"}),
                    find_file(prefix, {"t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"}));
  if (s.train.images.sizes().slice(1) != s.test.images.sizes().slice(1))
    fail(prefix_in, ": train and test images differ in size");
  s.num_classes = std::max(s.train.labels.max().item<int64_t>(), s.test.labels.max().item<int64_t>()) + 1;
  return s;
}

}  // namespace vitlab
