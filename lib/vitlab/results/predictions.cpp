#include "vitlab/results/predictions.h"

#include <cstdio>
#include <sstream>

#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {
namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string probability(float p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", p);
  return buf;
}

}  // namespace

void write_predictions(const std::string& path, const EvalResult& r, const std::vector<std::string>& images,
                       const std::vector<std::string>& class_names) {
  const int64_t n = r.top_classes.defined() ? r.top_classes.size(0) : 0, k = n ? r.top_classes.size(1) : 0;
  if (n != static_cast<int64_t>(images.size()))
    fail("--predictions ", path, ": ", n, " answers for ", images.size(), " images");
  auto name = [&](int64_t c) { return c >= 0 && c < static_cast<int64_t>(class_names.size()) ? class_names[c] : ""; };
  torch::Tensor cls, lab, prob;  // (n, k), (n), (n, k) on the CPU
  if (n > 0) cls = r.top_classes.contiguous(), lab = r.labels.contiguous(), prob = r.top_probs.contiguous();
  const int64_t* c = n ? cls.data_ptr<int64_t>() : nullptr;
  const int64_t* l = n ? lab.data_ptr<int64_t>() : nullptr;
  const float* p = n ? prob.data_ptr<float>() : nullptr;
  const bool as_json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  std::ostringstream out;
  if (as_json) {
    json rows = json::array();
    for (int64_t i = 0; i < n; ++i) {
      json top = json::array();
      for (int64_t j = 0; j < k; ++j) {
        json t{{"class", c[i * k + j]}, {"prob", p[i * k + j]}};
        if (!class_names.empty()) t["name"] = name(c[i * k + j]);
        top.push_back(t);
      }
      json row{{"image", images[i]}, {"label", l[i] >= 0 ? json(l[i]) : json(nullptr)}, {"top", top}};
      if (!class_names.empty()) row["label_name"] = l[i] >= 0 ? json(name(l[i])) : json(nullptr);
      rows.push_back(row);
    }
    out << dump_json(rows, 1) << "\n";
  } else {
    out << "image,label,label_name";
    for (int64_t j = 1; j <= k; ++j) out << ",class_" << j << ",name_" << j << ",prob_" << j;
    out << "\n";
    for (int64_t i = 0; i < n; ++i) {
      out << csv_field(images[i]) << "," << (l[i] >= 0 ? std::to_string(l[i]) : "") << "," << csv_field(name(l[i]));
      for (int64_t j = 0; j < k; ++j)
        out << "," << c[i * k + j] << "," << csv_field(name(c[i * k + j])) << "," << probability(p[i * k + j]);
      out << "\n";
    }
  }
  atomic_write(path, out.str());
}

}  // namespace vitlab
