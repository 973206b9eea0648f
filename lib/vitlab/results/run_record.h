#pragma once
// Pieces of the results record `vitlab.run/1` (DESIGN section 5) shared by the apps.
#include <torch/torch.h>

#include <string>

#include "vitlab/config.h"

namespace vitlab {

constexpr const char* kRunSchema = "vitlab.run/1";

std::string git_commit();         // the commit this binary was built from
std::string utc_timestamp();      // "2026-11-25T03:24:00Z"
json host_record(const torch::Device& device, int threads);
// Writes `record` to `dir`/result.json atomically.
void write_result(const std::string& dir, const json& record);

}  // namespace vitlab
