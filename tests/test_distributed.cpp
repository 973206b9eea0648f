// Data parallel between CPU processes through Gloo: two processes, each on half of every batch,
// end with the weights of one process on the whole batch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "test_util.h"
#include "vitlab/config.h"
#include "vitlab/io/files.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/train/distributed.h"

using namespace vitlab;
using namespace vitlab::test;

namespace {

// Sets environment variables for its lifetime.
struct Env {
  std::vector<std::string> names;
  Env(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [k, v] : vars) ::setenv(k, v, 1), names.push_back(k);
  }
  ~Env() {
    for (const auto& k : names) ::unsetenv(k.c_str());
  }
};

}  // namespace

TEST(Distributed, EnvironmentIsReadAndCheckedByName) {
  EXPECT_FALSE(DistEnv::from_environment().active());
  {
    Env e{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}};
    const DistEnv d = DistEnv::from_environment();
    EXPECT_TRUE(d.active());
    EXPECT_EQ(d.rank, 1);
    EXPECT_EQ(d.world, 2);
    EXPECT_EQ(d.master_addr, "10.0.0.1");
    EXPECT_EQ(d.master_port, 1234);
  }
  {
    Env e{{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1234"}};
    EXPECT_EQ(error_of([] { DistEnv::from_environment(); }), "RANK=2: expected an integer in [0, 1]");
  }
  {
    Env e{{"WORLD_SIZE", "2"}};
    EXPECT_NE(error_of([] { DistEnv::from_environment(); }).find("set MASTER_ADDR and MASTER_PORT"), std::string::npos);
  }
}

namespace {

// The synthetic run of the two-process tests, on `device`: with augmentation (random crops and
// mixup, drawn for the global batch) and EMA on.
json two_process_config(const std::string& device) {
  return json{{"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 2}, {"heads", 2}}},
              {"data", {{"spec", "synthetic"}, {"val_size", 200},
                        {"synthetic", {{"image_size", 16}, {"train", 1200}, {"test", 300}}}}},
              {"train", {{"epochs", 2}, {"batch_size", 32}, {"lr", 3e-3}, {"threads", 1}, {"ema_decay", 0.9},
                         {"eps", 0.01}, {"grad_clip", 0.0},  // Adam sensitive to the gradient's scale
                         {"device", device}, {"precision", "fp32"}, {"tf32", false},
                         {"augment", {{"crop_padding", 2}, {"mixup_alpha", 0.2}}}}}};
}

}  // namespace

TEST(Distributed, TwoGlooProcessesMatchOneOnTheWholeBatch) {
  // scripts/setup.sh installs the Gloo headers, so CI always runs this; the GPU machine has none.
  if (!has_gloo() && !std::getenv("CI")) GTEST_SKIP() << "this build has no Gloo headers (Debian: libgloo-dev)";
  expect_two_processes_match_one(two_process_config("cpu").dump(), "gloo");
}

TEST(Distributed, TwoNcclProcessesMatchOneOnTheWholeBatch) {
  if (!has_nccl() || torch::cuda::device_count() < 2) GTEST_SKIP() << "needs NCCL and two CUDA devices";
  expect_two_processes_match_one(two_process_config("cuda").dump(), "nccl");
}

namespace {

// vit_eval under torchrun's variables: three processes each evaluate a share (2, 3 and 3 of the
// 8 batches of the 301 test images) and reduce; the result is the one-process evaluation's.
void expect_sharded_evaluation_equals_one(const std::string& device) {
  TempDir dir;
  json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 1}, {"heads", 2}}},
           {"data", {{"spec", "synthetic"}, {"val_size", 0},
                     {"synthetic", {{"image_size", 16}, {"train", 400}, {"test", 301}}}}},
           {"train", {{"epochs", 1}, {"batch_size", 32}, {"threads", 1}, {"device", device}}}};
  write_file(dir / "c.json", cfg.dump());
  Output trained = run(std::string(VIT_TRAIN) + " --config " + dir / "c.json" + " --out " + dir / "run");
  ASSERT_EQ(trained.status, 0) << trained.text;
  const std::string eval = std::string(VIT_EVAL) + " --checkpoint " + dir / "run/checkpoint" +
                           " --threads 1 --batch-size 40 --device " + device + " --out ";
  Output one = run(eval + dir / "one.json");
  ASSERT_EQ(one.status, 0) << one.text;
  const std::string env = "WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  Output three = run("RANK=1 " + env + " " + eval + dir / "r1.json > " + dir / "rank1.log 2>&1 & p1=$!; RANK=2 " + env +
                     " " + eval + dir / "r2.json > " + dir / "rank2.log 2>&1 & p2=$!; RANK=0 " + env + " " + eval +
                     dir / "three.json; status=$?; wait $p1 || status=1; wait $p2 || status=1; exit $status");
  ASSERT_EQ(three.status, 0) << three.text << read_text(dir / "rank1.log");
  EXPECT_FALSE(path_exists(dir / "r1.json")) << "only rank 0 writes";
  const json a = read_json_file(dir / "one.json")["metrics"], b = read_json_file(dir / "three.json")["metrics"];
  EXPECT_EQ(read_json_file(dir / "three.json")["distributed"]["world_size"], 3);
  EXPECT_EQ(b["images"], 301);
  for (const char* k : {"images", "top1", "top5", "per_class_top1", "confusion"}) EXPECT_EQ(a[k], b[k]) << k;
  EXPECT_NEAR(a["loss"].get<double>(), b["loss"].get<double>(), 1e-6);
}

}  // namespace

TEST(Distributed, ShardedGlooEvaluationEqualsOneProcess) {
  if (!has_gloo() && !std::getenv("CI")) GTEST_SKIP() << "this build has no Gloo headers (Debian: libgloo-dev)";
  expect_sharded_evaluation_equals_one("cpu");
}

TEST(Distributed, ShardedNcclEvaluationEqualsOneProcess) {
  if (!has_nccl() || torch::cuda::device_count() < 3) GTEST_SKIP() << "needs NCCL and three CUDA devices";
  expect_sharded_evaluation_equals_one("cuda");
}
