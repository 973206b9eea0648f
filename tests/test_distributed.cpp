// Data parallel between CPU processes through Gloo: two processes, each on half of every batch,
// end with the weights of one process on the whole batch.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

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

// Trains one model twice, once in one process and once in two (RANK 0 and 1 on `device`), and
// expects the same weights: with augmentation (random crops and mixup, drawn for the global
// batch) and EMA on.
void expect_two_processes_match_one(const std::string& device, const std::string& backend) {
  TempDir dir;
  json cfg{{"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 2}, {"heads", 2}}},
           {"data", {{"spec", "synthetic"}, {"val_size", 200},
                     {"synthetic", {{"image_size", 16}, {"train", 1200}, {"test", 300}}}}},
           {"train", {{"epochs", 2}, {"batch_size", 32}, {"lr", 3e-3}, {"threads", 1}, {"ema_decay", 0.9},
                      {"eps", 0.01}, {"grad_clip", 0.0},  // Adam sensitive to the gradient's scale
                      {"device", device}, {"precision", "fp32"}, {"tf32", false},
                      {"augment", {{"crop_padding", 2}, {"mixup_alpha", 0.2}}}}}};
  write_file(dir / "c.json", cfg.dump());
  const std::string train = std::string(VIT_TRAIN) + " --config " + dir / "c.json" + " --out ";
  Output one = run(train + dir / "one");
  ASSERT_EQ(one.status, 0) << one.text;
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  Output two = run("RANK=1 " + env + " " + train + dir / "two > " + dir / "rank1.log 2>&1 & RANK=0 " + env + " " +
                   train + dir / "two; status=$?; wait $! || status=1; exit $status");
  ASSERT_EQ(two.status, 0) << two.text << read_text(dir / "rank1.log");

  const json a = read_json_file(dir / "one/result.json"), b = read_json_file(dir / "two/result.json");
  EXPECT_EQ(b["distributed"]["world_size"], 2);
  EXPECT_EQ(b["distributed"]["backend"], backend);
  EXPECT_NEAR(a["history"][1]["train_loss"].get<double>(), b["history"][1]["train_loss"].get<double>(), 1e-5);
  auto wa = load_safetensors(dir / "one/checkpoint/model.safetensors");
  auto wb = load_safetensors(dir / "two/checkpoint/model.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    auto [name, t] = wa[i];
    auto u = wb[i].second;
    ASSERT_EQ(wb[i].first, name);
    if (name.find("attn.qkv.bias") != std::string::npos) {
      // The key bias adds the same amount to every score of a query, which softmax ignores: its
      // gradient is zero up to rounding, and Adam scales that rounding noise up to full steps.
      // It differs between any two summation orders; compare the query and value biases.
      const int64_t d = t.size(0) / 3;
      t = torch::cat({t.narrow(0, 0, d), t.narrow(0, 2 * d, d)});
      u = torch::cat({u.narrow(0, 0, d), u.narrow(0, 2 * d, d)});
    }
    const double scale = t.abs().max().item<double>() + 1e-12;
    EXPECT_LT((t - u).abs().max().item<double>() / scale, 1e-4) << name;  // summation order only
  }
}

}  // namespace

TEST(Distributed, TwoGlooProcessesMatchOneOnTheWholeBatch) {
  // scripts/setup.sh installs the Gloo headers, so CI always runs this; the GPU machine has none.
  if (!has_gloo() && !std::getenv("CI")) GTEST_SKIP() << "this build has no Gloo headers (Debian: libgloo-dev)";
  expect_two_processes_match_one("cpu", "gloo");
}

TEST(Distributed, TwoNcclProcessesMatchOneOnTheWholeBatch) {
  if (!has_nccl() || torch::cuda::device_count() < 2) GTEST_SKIP() << "needs NCCL and two CUDA devices";
  expect_two_processes_match_one("cuda", "nccl");
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
