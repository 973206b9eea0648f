#pragma once
// safetensors (the Hugging Face hub's and timm's weight format): 8-byte little-endian header
// length N, N bytes of JSON header {name: {dtype, shape, data_offsets: [begin, end]}, ...,
// "__metadata__": {str: str}}, then the raw little-endian tensor bytes.
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vitlab {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes atomically (temporary file + rename). Tensors are copied to CPU, contiguous.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Reads and validates every header entry (dtype, shape x dtype size = byte count, offsets in
// bounds and non-overlapping); a broken file is an Error naming the file and the problem.
NamedTensors load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace vitlab
