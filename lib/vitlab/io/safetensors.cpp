#include "vitlab/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "vitlab/config.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"

namespace vitlab {
namespace {

using json = nlohmann::json;

const std::vector<std::pair<std::string, torch::ScalarType>>& dtypes() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> d = {
      {"F64", torch::kDouble}, {"F32", torch::kFloat}, {"F16", torch::kHalf},  {"BF16", torch::kBFloat16},
      {"I64", torch::kLong},   {"I32", torch::kInt},   {"I16", torch::kShort}, {"I8", torch::kChar},
      {"U8", torch::kByte},    {"BOOL", torch::kBool}};
  return d;
}

std::string dtype_name(torch::ScalarType t) {
  for (const auto& [name, type] : dtypes())
    if (type == t) return name;
  fail("safetensors: unsupported dtype ", c10::toString(t));
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string h = dump_json(header);
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  atomic_write(path, out);
}

NamedTensors load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (size < 8) fail(path, ": not a safetensors file (", size, " bytes)");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n == 0 || n > size - 8 || n > (uint64_t(100) << 20))
    fail(path, ": safetensors header length ", n, " does not fit the file's ", size, " bytes");
  std::string h(n, '\0');
  in.read(h.data(), static_cast<std::streamsize>(n));
  json header = json::parse(h, nullptr, false);
  if (header.is_discarded() || !header.is_object()) fail(path, ": safetensors header is not a JSON object");
  const uint64_t data_size = size - 8 - n;

  struct Entry {
    std::string name;
    torch::ScalarType type;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (metadata && it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) (*metadata)[m.key()] = m->get<std::string>();
      continue;
    }
    const auto& e = *it;
    auto bad = [&](const std::string& why) { fail(path, ": tensor '", it.key(), "': ", why); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      bad("header entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) bad("dtype is not a string");
    auto dt = std::find_if(dtypes().begin(), dtypes().end(), [&](const auto& d) { return d.first == e["dtype"]; });
    if (dt == dtypes().end()) bad("unsupported dtype " + dump_json(e["dtype"]));
    Entry x{it.key(), dt->second, {}, 0, 0};
    if (!e["shape"].is_array()) bad("shape is not an array");
    uint64_t numel = 1;
    for (const auto& s : e["shape"]) {
      if (!s.is_number_unsigned()) bad("shape has a non-integer or negative entry");
      x.shape.push_back(s.get<int64_t>());
      numel *= s.get<uint64_t>();
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad("data_offsets must be two non-negative integers");
    x.begin = off[0].get<uint64_t>();
    x.end = off[1].get<uint64_t>();
    if (x.begin > x.end || x.end > data_size)
      bad("data_offsets [" + std::to_string(x.begin) + ", " + std::to_string(x.end) + "] outside the " +
          std::to_string(data_size) + " data bytes (truncated file?)");
    const uint64_t expected = numel * c10::elementSize(x.type);
    if (x.end - x.begin != expected)
      bad("shape and dtype need " + std::to_string(expected) + " bytes, offsets give " + std::to_string(x.end - x.begin));
    entries.push_back(std::move(x));
  }
  // Tensors must not overlap (the format also asks that they tile the buffer without gaps).
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      fail(path, ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name, "' overlap");

  std::string data(data_size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  if (static_cast<uint64_t>(in.gcount()) != data_size) fail(path, ": read failed");
  NamedTensors out;  // in the file's data order (the JSON header's keys come sorted)
  for (const Entry* e : by_offset) {
    auto t = torch::empty(e->shape, torch::TensorOptions().dtype(e->type));
    if (e->end > e->begin) std::memcpy(t.data_ptr(), data.data() + e->begin, e->end - e->begin);
    out.emplace_back(e->name, t);
  }
  return out;
}

}  // namespace vitlab
