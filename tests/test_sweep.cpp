// Sweeps: grid expansion and naming, shards, a sweep killed mid-run and resumed, a failing run
// isolated, summaries merged across shard folders; plots drawn from fixture results.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <thread>

#include "test_util.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/results/plot.h"
#include "vitlab/results/stats.h"
#include "vitlab/results/summary.h"
#include "vitlab/results/sweep.h"

using namespace vitlab;
using vitlab::test::error_of;
using vitlab::test::Output;
using vitlab::test::run;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

const std::string kSweep = VIT_SWEEP, kPlot = VIT_PLOT;

SweepSpec spec_of(const json& j) { return parse_sweep_spec(j, "spec.json", "."); }

// A run of a second or two on one thread: synthetic data, a 2-block ViT of width 32.
json tiny_base(int epochs) {
  return json{{"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 2}, {"heads", 2}}},
              {"data", {{"spec", "synthetic"}, {"val_size", 200},
                        {"synthetic", {{"image_size", 16}, {"train", 1200}, {"test", 300}}}}},
              {"train", {{"epochs", epochs}, {"batch_size", 32}, {"lr", 3e-3}, {"threads", 1}}}};
}

json without_timing(json r) {
  for (auto& row : r["history"]) row.erase("seconds"), row.erase("images_per_s");
  return json{{"metrics", r["metrics"]}, {"history", r["history"]}};
}

}  // namespace

TEST(Sweep, ExpandsTheProductOfAxesAndZipsWithinOne) {
  json j{{"base", tiny_base(1)},
         {"set", {{"train.lr", 0.002}}},
         {"axes", json::array({json{{"model.attention", json::array({"mha", json{{"name", "gqa"}, {"kv_heads", 1}}})}},
                               json{{"model.depth", {1, 2}}, {"model.dim", {32, 64}}},
                               json{{"train.seed", {0, 1, 2}}}})}};
  const auto runs = expand_sweep(spec_of(j));
  ASSERT_EQ(runs.size(), 12u);  // 2 x 2 (zipped) x 3
  EXPECT_EQ(runs[0].name, "attention-mha__depth-1__dim-32__seed-0");
  EXPECT_EQ(runs[1].name, "attention-mha__depth-1__dim-32__seed-1");  // the last axis varies fastest
  EXPECT_EQ(runs[3].name, "attention-mha__depth-2__dim-64__seed-0");
  EXPECT_EQ(runs[11].name, "attention-gqa_kv_heads-1__depth-2__dim-64__seed-2");
  EXPECT_EQ(runs[11].config["model"]["dim"], 64);
  EXPECT_EQ(runs[11].config["model"]["depth"], 2);
  EXPECT_EQ(runs[11].config["model"]["attention"]["name"], "gqa");
  EXPECT_EQ(runs[11].config["train"]["seed"], 2);
  EXPECT_DOUBLE_EQ(runs[11].config["train"]["lr"].get<double>(), 0.002);
  EXPECT_EQ(runs[11].settings["model.dim"], 64);
  std::set<std::string> names;
  for (const auto& r : runs) {
    names.insert(r.name);
    EXPECT_TRUE(r.invalid.empty()) << r.invalid;
  }
  EXPECT_EQ(names.size(), runs.size());
  // Deterministic, and extending an axis keeps the names of the runs already there.
  EXPECT_EQ(expand_sweep(spec_of(j))[7].name, runs[7].name);
  j["axes"][2]["train.seed"].push_back(3);
  const auto more = expand_sweep(spec_of(j));
  ASSERT_EQ(more.size(), 16u);
  std::set<std::string> more_names;
  for (const auto& r : more) more_names.insert(r.name);
  for (const auto& n : names) EXPECT_TRUE(more_names.count(n)) << n;
}

TEST(Sweep, NamesAreSafeShortAndDistinguishKeysThatShareALastPart) {
  EXPECT_EQ(sweep_run_name({{"model.attention", json{{"name", "tucker"}, {"ranks", {{"q", 8}, {"k", 4}}}}}}),
            "attention-tucker_ranks-k4.q8");
  EXPECT_EQ(sweep_run_name({{"data.image_size", 32}, {"model.image_size", 16}}),
            "data.image_size-32__model.image_size-16");
  EXPECT_EQ(sweep_run_name({{"note", "a b/c"}}), "note-a_b_c");
  const std::string long_name = sweep_run_name({{"note", std::string(200, 'x')}});
  EXPECT_EQ(long_name.size(), 96u);
  EXPECT_NE(long_name, sweep_run_name({{"note", std::string(199, 'x')}}));
}

TEST(Sweep, SpecErrorsNameTheField) {
  auto err = [](const json& j) { return error_of([&] { expand_sweep(spec_of(j)); }); };
  EXPECT_NE(err(json{{"axes", json::array({json{{"model.depth", {1, 2}}, {"model.dim", {32}}}})}})
                .find("spec.json: axes[0].model.dim: 1 values, but model.depth has 2"),
            std::string::npos);
  EXPECT_NE(err(json{{"axis", json::array()}}).find("spec.json: axis: unknown key"), std::string::npos);
  EXPECT_NE(err(json{{"axes", json::array({json{{"train.seed", json::array()}}})}}).find("axes[0].train.seed"),
            std::string::npos);
  EXPECT_NE(err(json{{"axes", json::array({json{{"train.seed", {0}}}, json{{"train.seed", {1}}}})}})
                .find("already an axis"),
            std::string::npos);
  EXPECT_NE(err(json{{"base", "missing.json"}, {"axes", json::array()}}).find("base: no such file ./missing.json"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_sweep_spec("/nonexistent/spec.json"); }).find("/nonexistent/spec.json"),
            std::string::npos);
  // A bad value in one run leaves that run invalid (it fails alone), not the sweep.
  json j{{"base", tiny_base(1)}, {"axes", json::array({json{{"model.depth", {2, "deep"}}}})}};
  const auto runs = expand_sweep(spec_of(j));
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_TRUE(runs[0].invalid.empty());
  EXPECT_NE(runs[1].invalid.find("model.depth"), std::string::npos) << runs[1].invalid;
}

TEST(Sweep, ShardsCoverEveryRunExactlyOnce) {
  for (int n : {1, 2, 3, 5}) {
    std::vector<int> seen(17, 0);
    for (int i = 0; i < n; ++i) {
      const Shard s = parse_shard(std::to_string(i) + "/" + std::to_string(n), "--shard");
      for (int r = 0; r < 17; ++r) seen[r] += s.has(r);
    }
    for (int r = 0; r < 17; ++r) EXPECT_EQ(seen[r], 1) << "run " << r << " with " << n << " shards";
  }
  for (const char* bad : {"2/2", "-1/2", "1", "a/b", "0/0", "1/2x"})
    EXPECT_NE(error_of([&] { parse_shard(bad, "--shard"); }).find("--shard"), std::string::npos) << bad;
}

// kill -9 in the middle of the second run, SIGTERM in the third, then to the end: every run is
// trained exactly once (finished results untouched, interrupted runs resumed from their
// checkpoints) and the results equal those of a sweep that was never interrupted.
TEST(SweepCli, KilledSweepResumesAndRunsEveryRunOnce) {
  TempDir dir;
  write_file(dir / "spec.json",
             json{{"base", tiny_base(3)}, {"axes", json::array({json{{"train.seed", {0, 1, 2}}}})}}.dump());
  const std::vector<std::string> argv{kSweep, dir / "spec.json", "--out", dir / "sweep", "--threads", "1"};
  const std::string first = dir / "sweep/runs/seed-0", second = dir / "sweep/runs/seed-1",
                    third = dir / "sweep/runs/seed-2";

  auto start_and_stop_when = [&](const std::string& file, int sig) {
    const pid_t pid = spawn(argv, dir / "sweep.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!path_exists(file) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(pid, sig);
    return wait_child(pid);
  };
  ChildExit killed = start_and_stop_when(second + "/checkpoint/train_state.pt", SIGKILL);
  ASSERT_EQ(killed.signal, SIGKILL) << "the sweep ended before it could be killed: " << read_text(dir / "sweep.log");
  ASSERT_TRUE(is_regular_file(first + "/result.json"));
  ASSERT_FALSE(is_regular_file(second + "/result.json"));
  const std::string first_result = read_text(first + "/result.json");
  // The killed sweep's child died with it: its lock is free again.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int fd = -1;
  while ((fd = try_lock(run_lock_path(second))) < 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(fd, 0) << "vit_train outlived the killed sweep";
  close_lock(fd);
  EXPECT_EQ(read_run_state(second).state, "interrupted");

  ChildExit stopped = start_and_stop_when(third + "/checkpoint/train_state.pt", SIGTERM);
  EXPECT_EQ(stopped.code, 130) << read_text(dir / "sweep.log");
  EXPECT_EQ(read_run_state(third).state, "interrupted");
  EXPECT_TRUE(is_regular_file(second + "/result.json"));

  Output done = run(kSweep + " " + dir / "spec.json --out " + dir / "sweep --threads 1");
  ASSERT_EQ(done.status, 0) << done.text;
  EXPECT_NE(done.text.find("1 to run"), std::string::npos) << done.text;
  EXPECT_EQ(read_text(first + "/result.json"), first_result);  // never run again
  const json record = read_json_file(dir / "sweep/sweep.json");
  ASSERT_EQ(record["runs"].size(), 3u);
  std::vector<int> attempts;
  for (const auto& r : record["runs"]) {
    EXPECT_EQ(r["state"], "done");
    attempts.push_back(r["attempts"]);
  }
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 2}));
  EXPECT_NE(read_text(second + "/train.log").find("resuming"), std::string::npos);

  Output ref = run(kSweep + " " + dir / "spec.json --out " + dir / "ref --threads 1");
  ASSERT_EQ(ref.status, 0) << ref.text;
  for (const char* name : {"seed-0", "seed-1", "seed-2"})
    EXPECT_EQ(without_timing(read_json_file(dir / "sweep/runs/" + name + "/result.json")),
              without_timing(read_json_file(dir / "ref/runs/" + name + "/result.json")))
        << name;
  const std::string md = read_text(dir / "sweep/summary.md");
  EXPECT_NE(md.find("| seed-2 | `2` | done |"), std::string::npos) << md;
}

// Two shards into two folders, two runs at a time each; one setting is impossible (2 heads in
// 3 key/value groups): that run fails with its reason, every other run finishes, and
// --summarize merges both folders into one table.
TEST(SweepCli, FailingRunIsIsolatedAndShardSummariesMerge) {
  TempDir dir;
  json base = tiny_base(1);
  write_file(dir / "spec.json",
             json{{"base", base},
                  {"axes", json::array({json{{"model.attention", json::array({"mha", json{{"name", "gqa"}, {"kv_heads", 3}}})}},
                                        json{{"train.seed", {0, 1}}}})}}
                 .dump());
  Output dry = run(kSweep + " " + dir / "spec.json --dry-run");
  ASSERT_EQ(dry.status, 0) << dry.text;
  EXPECT_NE(dry.text.find("attention-mha__seed-1"), std::string::npos) << dry.text;
  EXPECT_NE(dry.text.find("invalid: model.attention.kv_heads"), std::string::npos) << dry.text;
  EXPECT_NE(dry.text.find("4 runs"), std::string::npos) << dry.text;
  EXPECT_FALSE(path_exists(dir / "a"));

  for (int i = 0; i < 2; ++i) {  // shard 1 pins its two runs to devices (both the CPU here)
    Output o = run(kSweep + " " + dir / "spec.json --out " + dir / (i ? "b" : "a") + " --shard " +
                   std::to_string(i) + (i ? "/2 --devices cpu,cpu" : "/2 --jobs 2") + " --threads 1");
    EXPECT_EQ(o.status, 2) << o.text;  // finished, with a failed run
    EXPECT_NE(o.text.find("1 done, 1 failed of 2"), std::string::npos) << o.text;
  }
  EXPECT_EQ(read_run_state(dir / "b/runs/attention-mha__seed-1").device, "cpu");
  Output merged = run(kSweep + " --summarize " + dir / "a " + dir / "b --out " + dir / "all");
  ASSERT_EQ(merged.status, 0) << merged.text;
  const std::string csv = read_text(dir / "all/summary.csv");
  int done = 0, failed = 0;
  for (const char* name : {"attention-mha__seed-0", "attention-mha__seed-1"})
    EXPECT_NE(csv.find(std::string(name) + ",mha,"), std::string::npos) << csv;
  size_t at = 0;
  while ((at = csv.find(",done,", at + 1)) != std::string::npos) ++done;
  at = 0;
  while ((at = csv.find(",failed,", at + 1)) != std::string::npos) ++failed;
  EXPECT_EQ(done, 2) << csv;
  EXPECT_EQ(failed, 2) << csv;
  EXPECT_NE(csv.find("kv_heads"), std::string::npos) << csv;  // the failure's reason
  EXPECT_NE(read_text(dir / "all/summary.md").find("| attention-gqa_kv_heads-3__seed-1 |"), std::string::npos);
  // Rerunning a finished shard runs nothing, and failed runs stay failed unless asked.
  Output again = run(kSweep + " " + dir / "spec.json --out " + dir / "a --shard 0/2 --threads 1");
  EXPECT_NE(again.text.find("0 to run"), std::string::npos) << again.text;
  Output retry = run(kSweep + " " + dir / "spec.json --out " + dir / "a --shard 0/2 --threads 1 --retry-failed");
  EXPECT_NE(retry.text.find("1 to run"), std::string::npos) << retry.text;
  EXPECT_EQ(read_run_state(dir / "a/runs/attention-gqa_kv_heads-3__seed-0").attempts, 2);
  // Errors: one line naming the flag or the file.
  Output bad = run(kSweep + " " + dir / "spec.json --out " + dir / "c --shard 3/2");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.text, "vit_sweep: error: --shard 3/2: expected i/n with 0 <= i < n, e.g. 0/4\n");
  Output not_sweep = run(kSweep + " --summarize " + dir.path);
  EXPECT_EQ(not_sweep.text, "vit_sweep: error: " + dir.path + ": not a sweep directory (no sweep.json)\n");
}

TEST(Sweep, SummaryMergesSeedsIntoMeanAndSampleStd) {
  auto row = [](const std::string& attention, int seed, double attn, const json& top1) {
    SummaryRow r;
    r.name = attention + "__seed-" + std::to_string(seed);
    r.settings = json{{"model.attention", attention}, {"train.seed", seed}};
    r.state = top1.is_null() ? "pending" : "done";
    r.accounting = json{{"params", {{"total", 1000 + attn}, {"attention", attn}}}, {"kv_floats_per_token", 8}};
    if (!top1.is_null())
      r.result = json{{"params", {{"total", 1000 + attn}, {"attention", attn}}}, {"kv_floats_per_token", 8},
                      {"metrics", {{"top1", top1}}}, {"timing", {{"images_per_s", 100.0 + seed}}}};
    return r;
  };
  const std::vector<SummaryRow> rows{row("mha", 0, 400, 80.0), row("mha", 1, 400, 82.0), row("mha", 2, 400, 84.0),
                                     row("tucker", 0, 100, 79.5), row("tucker", 1, 100, json())};
  const std::string md = summary_markdown(rows);
  // mean 82, sample std sqrt(((-2)^2 + 0 + 2^2) / 2) = 2; tucker: one of two done, no spread.
  // Standard error 2 / sqrt(3); tucker has one seed in common with its reference: no paired test.
  EXPECT_NE(md.find("| `mha` | 3/3 | 1,400 | 400 | 1 | 8 | 82.00 +- 2.00 | 1.15 | reference |  | 101 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| `tucker` | 1/2 | 1,100 | 100 | 0.25 | 8 | 79.50 |  |  |  | 100 |"), std::string::npos) << md;
  EXPECT_NE(md.find("|  | tucker | none (no budget with 2 or more paired seeds passes) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| tucker__seed-1 | `tucker` | `1` | pending |"), std::string::npos) << md;
  // Without a seed axis there is nothing to merge: the per-run table alone.
  std::vector<SummaryRow> unseeded{rows[0]};
  unseeded[0].settings.erase("train.seed");
  EXPECT_EQ(summary_markdown(unseeded).find("Over seeds"), std::string::npos);
}

// Student's t against published quantiles and closed forms (Cauchy at 1 dof, 2 dof, the normal).
TEST(Stats, StudentTMatchesKnownValues) {
  EXPECT_NEAR(student_t_quantile(0.975, 4), 2.776445105, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.95, 4), 2.131846786, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.70620474, 1e-6);
  EXPECT_NEAR(student_t_quantile(0.975, 9), 2.262157163, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.025, 9), -2.262157163, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 1e7), 1.959963985, 1e-6);
  EXPECT_DOUBLE_EQ(student_t_cdf(0, 3), 0.5);
  EXPECT_NEAR(student_t_cdf(1, 1), 0.75, 1e-12);                        // 1/2 + atan(1) / pi
  EXPECT_NEAR(student_t_cdf(2, 2), 0.5 + 1 / std::sqrt(6.0), 1e-12);    // 1/2 + t / (2 sqrt(2 + t^2))
  EXPECT_NEAR(student_t_cdf(-2, 2), 0.5 - 1 / std::sqrt(6.0), 1e-12);
  for (double dof : {1.0, 2.0, 4.0, 30.0})
    for (double p : {0.01, 0.3, 0.9, 0.999}) EXPECT_NEAR(student_t_cdf(student_t_quantile(p, dof), dof), p, 1e-10);
  // Paired differences: mean -0.16, sd sqrt(0.043), se sd / sqrt(5).
  const PairedDifference d = paired_difference({-0.2, 0.1, -0.4, 0.0, -0.3});
  EXPECT_EQ(d.n, 5);
  EXPECT_NEAR(d.mean, -0.16, 1e-12);
  EXPECT_NEAR(d.se, std::sqrt(0.043 / 5), 1e-12);
  EXPECT_NEAR(d.hi - d.mean, 2.776445105 * d.se, 1e-8);
  EXPECT_NEAR(d.upper - d.mean, 2.131846786 * d.se, 1e-8);
  EXPECT_NE(error_of([] { paired_difference({1.0}); }).find("at least 2 pairs"), std::string::npos);
}

// Two widths: each row is paired with MHA at its own width by seed, and each variant's smallest
// budget that the one-sided test does not put 0.5 points below MHA is named.
TEST(Sweep, SummaryPairsRunsBySeedWithTheReferenceAtTheSameWidth) {
  std::vector<SummaryRow> rows;
  auto add = [&](int dim, const json& attention, double attn, const std::vector<double>& top1) {
    for (size_t seed = 0; seed < top1.size(); ++seed) {
      SummaryRow r;
      r.name = "d" + std::to_string(dim) + "-" + dump_json(attention) + "-" + std::to_string(seed);
      r.settings = json{{"model.dim", dim}, {"model.attention", attention}, {"train.seed", seed}};
      r.state = "done";
      r.result = json{{"params", {{"total", 1000 + attn}, {"attention", attn}}}, {"kv_floats_per_token", 8},
                      {"metrics", {{"top1", top1[seed]}}}, {"timing", {{"images_per_s", 100.0}}}};
      rows.push_back(r);
    }
  };
  const std::vector<double> mha{80, 82, 84, 81, 83};
  auto shifted = [&](const std::vector<double>& by) {
    std::vector<double> v = mha;
    for (size_t i = 0; i < v.size(); ++i) v[i] += by[i];
    return v;
  };
  for (int dim : {192, 384}) {
    add(dim, "mha", dim * 4.0, dim == 192 ? mha : shifted({5, 5, 5, 5, 5}));
    add(dim, json{{"name", "tucker"}, {"rank", 8}}, dim * 1.0,
        dim == 192 ? shifted({-0.2, 0.1, -0.4, 0.0, -0.3}) : shifted({3.0, 3.5, 3.2, 2.8, 3.4}));
    add(dim, json{{"name", "tucker"}, {"rank", 4}}, dim * 0.5, shifted({-2.0, -1.5, -1.8, -2.2, -1.6}));
  }
  add(192, "mqa", 500, {81});
  const std::string md = summary_markdown(rows);
  // d 192: tucker rank 8 is -0.16 [-0.42, +0.10] (one-sided bound +0.04, not below); rank 4
  // is -1.82, below. d 384: against MHA at 384 (85, 87, ...), rank 8 is -1.82 too and rank 4 -6.82.
  EXPECT_NE(md.find("| `{\"name\":\"tucker\",\"rank\":8}` | `192` | 5/5 | 1,192 | 192 | 0.25 | 8 | 81.84 +- 1.48 | 0.66 | "
                    "-0.16 [-0.42, +0.10], n 5 | no | 100 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| `{\"name\":\"tucker\",\"rank\":4}` | `192` | 5/5 | 1,096 | 96 | 0.125 | 8 | 80.18 +- 1.76 | 0.79 | "
                    "-1.82 [-2.18, -1.46], n 5 | yes |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| `mha` | `384` | 5/5 | 2,536 | 1,536 | 1 | 8 | 87.00 +- 1.58 | 0.71 | reference |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `{\"name\":\"tucker\",\"rank\":8}` | `384` | 5/5 | 1,384 | 384 | 0.25 | 8 | 85.18 +- 1.76 | 0.79 | "
                    "-1.82 [-2.18, -1.46], n 5 | yes |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| model.dim 192 | tucker | `{\"name\":\"tucker\",\"rank\":8}` | 192 | 0.25 | -0.16 [-0.42, +0.10], n 5 | +0.04 |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| model.dim 384 | tucker | none"), std::string::npos) << md;
  EXPECT_NE(md.find("| model.dim 192 | mqa | none"), std::string::npos) << md;
}

namespace {

// A result as vit_train writes it, with the fields vit_plot reads.
json fixture_result(const std::string& attention, int seed, double attn_params, double top1) {
  return json{{"schema", "vitlab.run/1"},
              {"run_id", attention + "-" + std::to_string(static_cast<int>(attn_params)) + "-s" + std::to_string(seed)},
              {"model", {{"dim", 96}, {"attention", {{"name", attention}, {"size", attn_params}}}}},
              {"data", {{"spec", "fixture"}}},
              {"train", {{"seed", seed}, {"threads", 2}}},
              {"params", {{"total", 400000 + attn_params}, {"attention", attn_params}}},
              {"flops_per_image", 1e7},
              {"kv_floats_per_token", 100},
              {"metrics", {{"top1", top1}, {"loss", 1.0 - top1 / 100}}},
              {"timing", {{"images_per_s", 1000.0}}}};
}

}  // namespace

TEST(Plot, MergesSeedsGroupsAndFindsTheParetoFront) {
  std::vector<json> results{fixture_result("mha", 0, 4000, 80), fixture_result("mha", 1, 4000, 82),
                            fixture_result("tucker", 0, 1000, 79), fixture_result("tucker", 1, 1000, 78),
                            fixture_result("tucker", 0, 2000, 83), fixture_result("gqa", 0, 3000, 81)};
  PlotOptions opt;
  const auto points = plot_points(results, opt);
  ASSERT_EQ(points.size(), 4u);
  // Groups by their best top-1 (tucker 83, gqa 81, mha 81 by name), each by x.
  EXPECT_EQ(points[0].group, "tucker");
  EXPECT_DOUBLE_EQ(points[0].x, 1000);
  EXPECT_DOUBLE_EQ(points[0].y, 78.5);
  EXPECT_DOUBLE_EQ(points[1].x, 2000);
  EXPECT_EQ(points[2].group, "gqa");
  EXPECT_EQ(points[3].group, "mha");
  EXPECT_DOUBLE_EQ(points[3].y, 81);
  EXPECT_DOUBLE_EQ(points[3].y_min, 80);
  EXPECT_DOUBLE_EQ(points[3].y_max, 82);
  EXPECT_DOUBLE_EQ(points[3].y_se, 1);  // sample std sqrt(2) over sqrt(2) seeds
  EXPECT_DOUBLE_EQ(points[0].y_se, 0.5);
  EXPECT_EQ(points[3].seeds, 2);
  // Front: tucker@1000 (cheapest), tucker@2000 (best); mha and gqa cost more for less.
  const auto front = pareto_front(points, opt);
  ASSERT_EQ(front.size(), 2u);
  EXPECT_DOUBLE_EQ(points[front[0]].x, 1000);
  EXPECT_DOUBLE_EQ(points[front[1]].x, 2000);
  // For a loss lower is better: the same two points, by the same argument.
  opt.y = "loss";
  EXPECT_EQ(pareto_front(plot_points(results, opt), opt).size(), 2u);
  opt.y = "metrics.nothing";
  EXPECT_NE(error_of([&] { plot_points(results, opt); }).find("--y metrics.nothing: not a number"), std::string::npos);
}

TEST(PlotCli, DrawsPngAndSvgWithTheirDataAndScript) {
  // scripts/setup.sh installs gnuplot, so CI always runs this; the GPU machine has none.
  if (find_in_path("gnuplot").empty() && !std::getenv("CI")) GTEST_SKIP() << "gnuplot is not installed here";
  TempDir dir;
  make_directories(dir / "results");
  int i = 0;
  for (const auto& r : {fixture_result("mha", 0, 4000, 80), fixture_result("mha", 1, 4000, 82),
                        fixture_result("tucker", 0, 1000, 79), fixture_result("tucker", 0, 2000, 83)}) {
    make_directories(dir / ("results/" + std::to_string(i)));
    write_file(dir / ("results/" + std::to_string(i++) + "/result.json"), r.dump());
  }
  Output o = run(kPlot + " " + dir / "results --x attention_params --y top1 --group attention --out " + dir / "p.png" +
                 " --title 'fixture'");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_NE(o.text.find("Pareto front: tucker@1000 tucker@2000"), std::string::npos) << o.text;
  const std::string png = read_text(dir / "p.png");
  ASSERT_GT(png.size(), 5000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const std::string dat = read_text(dir / "p.dat");
  EXPECT_NE(dat.find("# group: mha\n# x y y_min y_max seeds runs\n4000 81 80 82 2 "), std::string::npos) << dat;
  EXPECT_NE(dat.find("# group: tucker"), std::string::npos) << dat;
  EXPECT_NE(dat.find("# Pareto front\n# x y\n1000 79\n2000 83\n"), std::string::npos) << dat;
  const std::string gp = read_text(dir / "p.gp");
  EXPECT_NE(gp.find("set output \"p.png\""), std::string::npos) << gp;
  EXPECT_NE(gp.find("set logscale x"), std::string::npos);
  EXPECT_NE(gp.find("title \"tucker\""), std::string::npos);
  for (const auto& name : list_directory(dir.path)) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;

  Output svg = run(kPlot + " " + dir / "results/0/result.json " + dir / "results/2/result.json --out " + dir / "p.svg");
  ASSERT_EQ(svg.status, 0) << svg.text;
  const std::string s = read_text(dir / "p.svg");
  EXPECT_NE(s.find("<svg"), std::string::npos);
  EXPECT_NE(s.find("tucker"), std::string::npos);

  // Standard-error bars (mha: 81 +- 1; a single seed's bar is its point).
  Output se = run(kPlot + " " + dir / "results --bars se --out " + dir / "se.png");
  ASSERT_EQ(se.status, 0) << se.text;
  const std::string se_dat = read_text(dir / "se.dat");
  EXPECT_NE(se_dat.find("# group: mha\n# x y y-se y+se seeds runs\n4000 81 80 82 2 "), std::string::npos) << se_dat;
  EXPECT_NE(se_dat.find("2000 83 83 83 1 "), std::string::npos) << se_dat;
  EXPECT_NE(read_text(dir / "se.gp").find("bars: standard error"), std::string::npos);
  Output range = run(kPlot + " " + dir / "results --bars range --out " + dir / "r.png");
  EXPECT_EQ(range.status, 2);  // a usage error, as CLI11 reports them
  EXPECT_EQ(range.text, "vit_plot: error: --bars: range not in {minmax,se} (see --help)\n");

  Output bad = run(kPlot + " " + dir / "results --out " + dir / "p.jpg");
  EXPECT_EQ(bad.text, "vit_plot: error: --out " + dir / "p.jpg" + ": the picture must end in .png or .svg\n");
  Output none = run(kPlot + " " + dir / "nothing --out " + dir / "p.png");
  EXPECT_EQ(none.text, "vit_plot: error: " + dir / "nothing" + ": no such file or directory\n");
  Output device = run(kPlot + " /dev/null --out " + dir / "p.png");
  EXPECT_EQ(device.text, "vit_plot: error: /dev/null: not a regular file or a directory\n");
}
