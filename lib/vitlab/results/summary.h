#pragma once
// summary.csv and summary.md of one or more sweep directories: one row per run with its
// settings, state, accounting and metrics, merged from whatever results exist (shards that
// wrote separate directories merge into one table).
#include <string>
#include <vector>

#include "vitlab/config.h"

namespace vitlab {

struct SummaryRow {
  std::string name;
  json settings;    // axis key -> value
  std::string state;
  std::string error;
  json accounting;  // params, flops_per_image, kv_floats_per_token (null when unknown)
  json result;      // the run's result.json (null until done)
};

// Reads DIR/sweep.json and each run's files for every DIR; a run present in several
// directories is taken from the one where it got furthest (done, failed, running, interrupted,
// pending), the first of equals.
std::vector<SummaryRow> collect_summary(const std::vector<std::string>& dirs);
std::string summary_csv(const std::vector<SummaryRow>& rows);
// With a seed axis (a setting named seed or ending in .seed), summary.md opens with the runs
// merged over seeds: top-1 as mean +- sample standard deviation, img/s as the mean.
std::string summary_markdown(const std::vector<SummaryRow>& rows);
// Writes DIR/summary.csv and DIR/summary.md atomically.
void write_summary(const std::string& dir, const std::vector<SummaryRow>& rows);

}  // namespace vitlab
