// vit_sweep: expand a sweep spec into runs and train them as child processes of vit_train,
// resumably; or merge the summaries of sweep directories.

#include <map>

#include "vitlab/analysis/accounting.h"
#include "vitlab/app.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/cli.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/results/summary.h"
#include "vitlab/results/sweep_runner.h"

namespace {

// Parameters, FLOPs and KV floats of every run, counting each distinct model once.
std::vector<vitlab::json> account(const std::vector<vitlab::SweepRun>& runs) {
  std::map<std::string, vitlab::json> seen;
  std::vector<vitlab::json> out;
  for (const auto& r : runs) {
    if (!r.invalid.empty()) {
      out.push_back(vitlab::json{{"error", r.invalid}});
      continue;
    }
    const std::string key = vitlab::dump_json(r.config["model"]);
    if (!seen.count(key)) {
      try {  // the attention's own options are checked when the model is built
        vitlab::json a = vitlab::accounting_of(vitlab::model_from_json(r.config["model"]));
        a.erase("attention");
        seen[key] = a;
      } catch (const std::exception& e) {
        seen[key] = vitlab::json{{"error", vitlab::error_message(e)}};
      }
    }
    out.push_back(seen[key]);
  }
  return out;
}

void print_dry_run(const std::vector<vitlab::SweepRun>& runs, const std::vector<vitlab::json>& acct,
                   const vitlab::Shard& shard, const std::string& dir) {
  std::printf("%5s  %-60s %12s %12s %10s %10s  %s\n", "index", "run", "params", "attn params", "GFLOP/img",
              "KV/token", dir.empty() ? "" : "state");
  int mine = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!shard.has(runs[i].index)) continue;
    ++mine;
    const auto& a = acct[i];
    std::string state;
    if (!dir.empty()) state = vitlab::read_run_state(vitlab::run_directory(dir, runs[i].name)).state;
    if (a.contains("error")) {
      std::printf("%5d  %-60s invalid: %s\n", runs[i].index, runs[i].name.c_str(), a["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("%5d  %-60s %12lld %12lld %10.4g %10lld  %s\n", runs[i].index, runs[i].name.c_str(),
                static_cast<long long>(a["params"]["total"].get<int64_t>()),
                static_cast<long long>(a["params"]["attention"].get<int64_t>()),
                a["flops_per_image"].get<double>() / 1e9, static_cast<long long>(a["kv_floats_per_token"].get<int64_t>()),
                state.c_str());
  }
  std::printf("%d runs%s\n", mine, shard.count > 1 ? " in this shard" : "");
}

}  // namespace

int main(int argc, char** argv) {
  vitlab::prefer_passive_openmp(argv);
  CLI::App app{
      "Run a grid of vit_train runs from a sweep spec, resumably, and summarise them (DIR/sweep.json, "
      "DIR/summary.csv, DIR/summary.md); or merge the summaries of sweep directories with --summarize."};
  std::string spec_path, out, devices, shard_text = "0/1";
  std::vector<std::string> summarize;
  bool dry_run = false, retry_failed = false;
  int jobs = 1, threads = 0;
  app.add_option("spec", spec_path, "Sweep spec JSON: {base, set, axes} (see README)")->check(CLI::ExistingFile);
  app.add_option("--out", out, "Sweep directory (with --summarize: where the merged summary goes)");
  app.add_flag("--dry-run", dry_run, "List every run with its parameter counts and state; train nothing");
  app.add_option("--jobs", jobs, "Runs at a time (default 1, or one per --devices entry)")
      ->check(vitlab::cli::integer(1));
  app.add_option("--devices", devices, "Comma-separated devices the runs are pinned to, e.g. 0,1 or cuda:0,cuda:1 or cpu");
  app.add_option("--threads", threads, "CPU threads per run (default: the cores divided by --jobs)")
      ->check(vitlab::cli::integer(0));
  app.add_option("--shard", shard_text, "Run only runs i, i+n, i+2n, ... (i/n; Slurm arrays, GNU parallel)");
  app.add_flag("--retry-failed", retry_failed, "Run failed runs again (by default they stay failed)");
  app.add_option("--summarize", summarize, "Merge the summaries of these sweep directories (shards) and print it")
      ->take_all();
  std::vector<std::string> plugins;
  vitlab::cli::add_plugin_flag(app, plugins);
  VITLAB_CLI_PARSE(app, "vit_sweep", argc, argv);

  return vitlab::run_app("vit_sweep", [&] {
    vitlab::load_plugins(plugins);
    if (!summarize.empty()) {
      if (!spec_path.empty()) vitlab::fail("--summarize: takes sweep directories, not a spec");
      auto rows = vitlab::collect_summary(summarize);
      vitlab::write_summary(out.empty() ? summarize.front() : out, rows);
      std::fputs(vitlab::summary_markdown(rows).c_str(), stdout);
      return 0;
    }
    if (spec_path.empty()) vitlab::fail("spec: give a sweep spec file (or --summarize DIR...)");
    const vitlab::Shard shard = vitlab::parse_shard(shard_text, "--shard");
    const vitlab::SweepSpec spec = vitlab::read_sweep_spec(spec_path);
    const auto runs = vitlab::expand_sweep(spec);
    const auto acct = account(runs);
    if (dry_run) {
      print_dry_run(runs, acct, shard, out.empty() || !vitlab::is_directory(out) ? "" : out);
      return 0;
    }
    if (out.empty()) vitlab::fail("--out: required (the sweep directory)");
    vitlab::SweepOptions opt;
    opt.dir = out;
    opt.trainer = vitlab::join_path(vitlab::executable_directory(), "vit_train");
    if (!vitlab::is_regular_file(opt.trainer)) vitlab::fail("vit_train not found beside vit_sweep (", opt.trainer, ")");
    if (!devices.empty()) opt.devices = vitlab::parse_devices(devices, "--devices");
    opt.jobs = app.count("--jobs") || opt.devices.empty() ? jobs : static_cast<int>(opt.devices.size());
    opt.threads = threads;
    opt.shard = shard;
    opt.retry_failed = retry_failed;
    const auto outcome = vitlab::run_sweep(spec, runs, acct, opt);
    auto rows = vitlab::collect_summary({out});
    vitlab::write_summary(out, rows);
    std::printf("summary: %s/summary.md\n", out.c_str());
    if (outcome.interrupted) return 130;
    return outcome.failed > 0 ? 2 : 0;
  });
}
