#include "fuzz/targets.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "vitlab/app.h"
#include "vitlab/data/dataset.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/hf.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/io/timm.h"
#include "vitlab/results/plot.h"
#include "vitlab/results/summary.h"
#include "vitlab/results/sweep.h"
#include "vitlab/text.h"
#include "vitlab/train/checkpoint.h"

namespace vitlab::fuzz {
namespace {

// One scratch directory per process, removed at exit; every input overwrites its files. The
// name is never destroyed: the exit handler runs after the statics' destructors.
const std::string& scratch() {
  static const std::string* dir = [] {
    auto* t = new std::string("/tmp/vitlab-fuzz-XXXXXX");
    if (!mkdtemp(t->data())) throw std::runtime_error("fuzz: cannot create a scratch directory");
    std::atexit([] { remove_tree(scratch()); });
    return t;
  }();
  return *dir;
}

std::string put(const std::string& name, const std::string& bytes) {
  const std::string path = join_path(scratch(), name);
  const auto slash = path.rfind('/');
  make_directories(path.substr(0, slash));
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Text inputs of several files: the parts are separated by lines of four dashes.
std::vector<std::string> parts(const uint8_t* data, size_t size, size_t n) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < n; ++i) {
    const auto at = text.find("\n----\n");
    if (at == std::string::npos) break;
    out.push_back(text.substr(0, at));
    text = text.substr(at + 6);
  }
  out.push_back(text);
  out.resize(n);
  return out;
}

// A vitlab::Error is the answer bad input must get; everything else propagates to the fuzzer.
template <typename F>
void refused_or_fine(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// safetensors: the whole input is the file (load_safetensors validates the header and table).
void safetensors(const uint8_t* data, size_t size) {
  const std::string path = put("model.safetensors", std::string(reinterpret_cast<const char*>(data), size));
  refused_or_fine([&] {
    std::map<std::string, std::string> meta;
    load_safetensors(path, &meta);
  });
}

// IDX: byte 0 bit 0 / bit 1 name the images / labels file .gz (its bytes as given, so corrupt
// gzip streams are read too), bytes 1-2 the labels file's length (little-endian); then the
// labels file, then the images file.
void idx(const uint8_t* data, size_t size) {
  if (size < 3) return;
  const size_t labels = std::min<size_t>(size - 3, data[1] | (size_t(data[2]) << 8));
  const char* p = reinterpret_cast<const char*>(data + 3);
  std::remove(join_path(scratch(), "images").c_str());
  std::remove(join_path(scratch(), "images.gz").c_str());
  const std::string lab = put(data[0] & 2 ? "labels.gz" : "labels", std::string(p, labels));
  const std::string img = put(data[0] & 1 ? "images.gz" : "images", std::string(p + labels, size - 3 - labels));
  refused_or_fine([&] { read_idx(img, lab); });
}

// CIFAR binary: byte 0 bit 0 picks CIFAR-100; the rest is every data file of the set and its
// class-names file.
void cifar(const uint8_t* data, size_t size) {
  if (size < 1) return;
  const int classes = data[0] & 1 ? 100 : 10;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string dir = "cifar" + std::to_string(classes);
  if (classes == 10) {
    for (int i = 1; i <= 5; ++i) put(dir + "/data_batch_" + std::to_string(i) + ".bin", bytes);
    put(dir + "/test_batch.bin", bytes);
    put(dir + "/batches.meta.txt", bytes);
  } else {
    put(dir + "/train.bin", bytes);
    put(dir + "/test.bin", bytes);
    put(dir + "/fine_label_names.txt", bytes);
  }
  refused_or_fine([&] { load_cifar(join_path(scratch(), dir), classes); });
}

// A run config and its --set overrides as vit_train reads them: the overrides one a line, a
// "----" line, then the JSON file.
void run_config(const uint8_t* data, size_t size) {
  const auto p = parts(data, size, 2);
  std::vector<std::string> sets = split(p[0], '\n');
  sets.erase(std::remove(sets.begin(), sets.end(), std::string()), sets.end());
  const std::string path = put("config.json", p[1]);
  refused_or_fine([&] {
    const RunConfig cfg = load_run_config(path, sets);
    run_from_json(to_json(cfg)).validate();  // what a result.json records reads back
  });
}

// A sweep spec as vit_sweep reads it, expanded into its runs.
void sweep_spec(const uint8_t* data, size_t size) {
  const std::string path = put("spec.json", std::string(reinterpret_cast<const char*>(data), size));
  refused_or_fine([&] { expand_sweep(read_sweep_spec(path)); });
}

// A checkpoint directory's config.json (vitlab's, timm's or transformers') and, after a
// "----" line, transformers' preprocessor_config.json; the evaluation transform as vit_eval
// takes it from them.
void checkpoint_config(const uint8_t* data, size_t size) {
  const auto p = parts(data, size, 2);
  const std::string dir = join_path(scratch(), "checkpoint");
  const std::string config = put("checkpoint/config.json", p[0]);
  std::remove(join_path(dir, "preprocessor_config.json").c_str());
  if (!p[1].empty()) put("checkpoint/preprocessor_config.json", p[1]);
  refused_or_fine([&] {
    const ModelConfig mc = read_checkpoint_config(dir);
    const json j = read_json_file(config);
    DataConfig dc;
    if (is_timm_config(j)) apply_timm_eval_transform(j, config, dc);
    if (is_hf_config(j)) apply_hf_eval_transform(hf_preprocessor(dir), mc, dir, dc);
  });
}

// Results as vit_plot and vit_sweep --summarize read them: a result.json, a "----" line, a
// sweep.json whose runs all find that result.json as theirs (state file: done).
void results(const uint8_t* data, size_t size) {
  const auto p = parts(data, size, 2);
  const std::string result = put("results/result.json", p[0]);
  refused_or_fine([&] {
    const auto loaded = load_results({result});
    for (const char* x : {"params", "attention_params", "flops", "kv", "img_s", "train.epochs"})
      for (const char* y : {"top1", "best_top1", "loss"}) {
        PlotOptions opt;
        opt.x = x;
        opt.y = y;
        opt.group = "attention,pos";
        pareto_front(plot_points(loaded, opt), opt);
      }
  });
  const std::string dir = join_path(scratch(), "sweep");
  remove_tree(dir);
  put("sweep/sweep.json", p[1]);
  refused_or_fine([&] {
    const json record = read_json_file(join_path(dir, "sweep.json"));
    if (record.is_object() && record.contains("runs") && record["runs"].is_array())
      for (const auto& r : record["runs"])
        if (r.is_object() && r.contains("name") && r["name"].is_string() && is_run_name(r["name"].get<std::string>())) {
          const std::string run_dir = run_directory(dir, r["name"].get<std::string>());
          RunState done;
          done.state = "done";
          write_run_state(run_dir, done);
          put(run_dir.substr(scratch().size() + 1) + "/result.json", p[0]);
        }
  });
  refused_or_fine([&] {
    const auto rows = collect_summary({dir});
    summary_csv(rows);
    summary_markdown(rows);
  });
}

// An image file as the folder loader decodes it: byte 0 picks 1 or 3 channels and a reduced
// decode for JPEGs; the rest is the file.
void image(const uint8_t* data, size_t size) {
  if (size < 1) return;
  const int channels = data[0] & 1 ? 1 : 3, reduce = 1 << ((data[0] >> 1) & 3);
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string path = put("image", bytes);
  std::vector<uint8_t> pixels;
  int h = 0, w = 0;
  std::string error;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  jpeg_size(u, bytes.size(), h, w);
  jpeg_complete(u, bytes.size());
  refused_or_fine([&] {
    if (decode_image_file(path, channels, pixels, h, w, error, [&](int, int) { return reduce; }) &&
        pixels.size() != static_cast<size_t>(h) * w * channels)
      throw std::logic_error("image: decoded size disagrees with its dimensions");
  });
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"safetensors", safetensors}, {"idx", idx},
      {"cifar", cifar},             {"run_config", run_config},
      {"sweep_spec", sweep_spec},   {"checkpoint_config", checkpoint_config},
      {"results", results},         {"image", image},
  };
  return all;
}

const Target& target(const std::string& name) {
  for (const auto& t : targets())
    if (t.name == name) return t;
  throw std::invalid_argument("no fuzz target " + name);
}

}  // namespace vitlab::fuzz
