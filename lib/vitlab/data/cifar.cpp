// CIFAR-10 / CIFAR-100 "binary version": records of label byte(s) + 3072 pixel bytes
// (1024 red, 1024 green, 1024 blue, each row-major 32x32). CIFAR-100 has a coarse then a fine
// label byte; vitlab uses the fine label.
#include <cstring>
#include <fstream>

#include "vitlab/data/dataset.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {
namespace {

Dataset read_cifar_files(const std::vector<std::string>& files, int label_bytes, int classes) {
  const int64_t record = label_bytes + 3072;
  std::vector<std::string> blobs;
  int64_t n = 0;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open (CIFAR binary file)");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.empty() || bytes.size() % record != 0)
      fail(path, ": ", bytes.size(), " bytes is not a whole number of ", record, "-byte CIFAR-", classes,
           " records (truncated or not a CIFAR file)");
    n += static_cast<int64_t>(bytes.size()) / record;
    blobs.push_back(std::move(bytes));
  }
  auto images = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  auto labels = torch::empty({n}, torch::kLong);
  auto* img = images.data_ptr<uint8_t>();
  auto* lab = labels.data_ptr<int64_t>();
  int64_t i = 0;
  for (size_t f = 0; f < blobs.size(); ++f) {
    const auto* p = reinterpret_cast<const uint8_t*>(blobs[f].data());
    for (size_t off = 0; off < blobs[f].size(); off += record, ++i) {
      int label = p[off + label_bytes - 1];
      if (label >= classes)
        fail(files[f], ": record ", off / record, " has label ", label, " (CIFAR-", classes, " has ", classes,
             " classes): corrupt or not a CIFAR-", classes, " file");
      lab[i] = label;
      std::memcpy(img + i * 3072, p + off + label_bytes, 3072);
    }
  }
  return {images, labels};
}

std::vector<std::string> read_names(const std::string& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

}  // namespace

Splits load_cifar(const std::string& dir_in, int classes) {
  std::string dir = dir_in;
  // Accept the folder the archive unpacks to as well as its parent.
  for (const char* sub : {"cifar-10-batches-bin", "cifar-100-binary"})
    if (is_directory(join_path(dir, sub))) dir = join_path(dir, sub);
  if (!is_directory(dir)) fail("cifar", classes, ":", dir_in, ": not a directory");
  std::vector<std::string> train, test;
  if (classes == 10) {
    for (int i = 1; i <= 5; ++i) train.push_back(join_path(dir, "data_batch_" + std::to_string(i) + ".bin"));
    test.push_back(join_path(dir, "test_batch.bin"));
  } else {
    train.push_back(join_path(dir, "train.bin"));
    test.push_back(join_path(dir, "test.bin"));
  }
  for (const auto* list : {&train, &test})
    for (const auto& f : *list)
      if (!path_exists(f)) fail(f, ": missing (cifar", classes, ":DIR needs the CIFAR-", classes, " binary files)");
  const int label_bytes = classes == 10 ? 1 : 2;
  Splits s;
  s.name = "cifar" + std::to_string(classes);
  s.source = dir;
  s.train = read_cifar_files(train, label_bytes, classes);
  s.test = read_cifar_files(test, label_bytes, classes);
  s.num_classes = classes;
  s.class_names = read_names(join_path(dir, classes == 10 ? "batches.meta.txt" : "fine_label_names.txt"));
  if (static_cast<int>(s.class_names.size()) != classes) s.class_names.clear();
  return s;
}

}  // namespace vitlab
