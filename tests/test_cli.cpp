// The apps as a user runs them: --help, one-line errors for bad input, and kill -9 + --resume.
#include <gtest/gtest.h>

#include <sstream>

#include "test_util.h"
#include "vitlab/config.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/io/safetensors.h"
#include "vitlab/io/timm.h"
#include "vitlab/train/checkpoint.h"

using namespace vitlab;
using vitlab::test::expect_one_line_error;
using vitlab::test::Output;
using vitlab::test::run;
using vitlab::test::TempDir;
using vitlab::test::write_file;

namespace {

const std::string kTrain = VIT_TRAIN, kEval = VIT_EVAL, kInfo = VIT_INFO, kBench = VIT_BENCH;

// A small synthetic run (seconds per epoch on one thread).
json tiny_config(int epochs) {
  return json{{"model", {{"image_size", 16}, {"patch_size", 4}, {"dim", 32}, {"depth", 2}, {"heads", 2}}},
              {"data", {{"spec", "synthetic"}, {"val_size", 300},
                        {"synthetic", {{"image_size", 16}, {"train", 3000}, {"test", 500}}}}},
              {"train", {{"epochs", epochs}, {"batch_size", 32}, {"lr", 3e-3}, {"threads", 1}, {"ema_decay", 0.9},
                         {"augment", {{"mixup_alpha", 0.2}}}}}};
}

json without_timing(json r) {
  for (auto& row : r["history"]) row.erase("seconds"), row.erase("images_per_s");
  return json{{"metrics", r["metrics"]}, {"history", r["history"]}, {"params", r["params"]}};
}

}  // namespace

TEST(Cli, HelpExitsZero) {
  for (const std::string app : {kTrain, kEval, kInfo, kBench, std::string(VIT_RANKS), std::string(VIT_CONVERT)}) {
    Output o = run(app + " --help");
    EXPECT_EQ(o.status, 0) << app;
    EXPECT_NE(o.text.find("--"), std::string::npos);
  }
}

// Every numeric flag of every app, found in its --help: 0, -1 and a value past any range are each
// accepted or refused in one line of vitlab's own words naming the flag (never CLI11's range
// message with the largest double in full); -1 and the huge value are refused. A trailing
// unknown flag makes an accepted value end in a one-line usage error, so no command does real
// work. An app's commands run at once (OMP_WAIT_POLICY set: no re-execution, see app.h).
TEST(Cli, EveryNumericFlagIsCheckedInOneLine) {
  const std::vector<std::string> apps{VIT_TRAIN, VIT_EVAL,  VIT_INFO,  VIT_SWEEP,
                                      VIT_PLOT,  VIT_BENCH, VIT_RANKS, VIT_CONVERT};
  const std::vector<std::string> values{"0", "-1", "1e400"};
  TempDir dir;
  int flags = 0;
  for (const auto& path : apps) {
    const std::string app = path.substr(path.rfind('/') + 1);
    const Output help = run(path + " --help");
    ASSERT_EQ(help.status, 0) << help.text;
    std::vector<std::string> numeric;
    std::istringstream lines(help.text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string flag, type;
      words >> flag >> type;
      if (flag.rfind("--", 0) == 0 && (type.rfind("INT", 0) == 0 || type.rfind("FLOAT", 0) == 0)) numeric.push_back(flag);
    }
    flags += static_cast<int>(numeric.size());
    std::string script;
    for (size_t f = 0; f < numeric.size(); ++f)
      for (size_t v = 0; v < values.size(); ++v) {
        const std::string out = dir / (app + std::to_string(f) + "_" + std::to_string(v));
        script += "(OMP_WAIT_POLICY=PASSIVE " + path + " " + numeric[f] + " " + values[v] + " --no-such-flag > " + out +
                  " 2>&1; echo $? > " + out + ".rc) & ";
      }
    run(script + "wait");
    for (size_t f = 0; f < numeric.size(); ++f)
      for (size_t v = 0; v < values.size(); ++v) {
        const std::string out = dir / (app + std::to_string(f) + "_" + std::to_string(v));
        Output o{std::stoi(vitlab::read_text(out + ".rc")), vitlab::read_text(out)};
        const std::string what = app + " " + numeric[f] + " " + values[v] + ": ";
        expect_one_line_error(o, app, "");
        EXPECT_EQ(o.status, 2) << what << o.text;
        EXPECT_LT(o.text.size(), 200u) << what << o.text;
        const bool refused = o.text.rfind(app + ": error: " + numeric[f] + ": must be ", 0) == 0;
        if (values[v] != "0") EXPECT_TRUE(refused) << what << o.text;
      }
  }
  EXPECT_GE(flags, 19) << "the --help pages list fewer numeric flags than the apps have";
}

TEST(Cli, InfoPrintsTheBreakdown) {
  Output o = run(kInfo + " --set model.preset=vit-tiny --json");
  ASSERT_EQ(o.status, 0) << o.text;
  json j = json::parse(o.text);
  EXPECT_EQ(j["model"]["dim"], 192);
  EXPECT_EQ(j["params"]["attention_per_layer"], 4 * 192 * 192 + 4 * 192);
  Output table = run(kInfo);
  EXPECT_NE(table.text.find("forward FLOPs per image"), std::string::npos);
  Output cmp = run(kInfo + " --compare mha mqa '{\"name\":\"gqa\",\"kv_heads\":2}'");
  ASSERT_EQ(cmp.status, 0) << cmp.text;
  EXPECT_NE(cmp.text.find("\"kv_heads\":2"), std::string::npos) << cmp.text;
  EXPECT_NE(cmp.text.find("1.000x"), std::string::npos) << cmp.text;
  Output m = run(kInfo + " --set model.attention.name=tucker --match-params 20000");
  ASSERT_EQ(m.status, 0) << m.text;
  EXPECT_NE(m.text.find("matched "), std::string::npos);
  EXPECT_EQ(json::parse(m.text.substr(m.text.find('{')))["name"], "tucker");  // the spec, on stdout
  expect_one_line_error(run(kInfo + " --match-params 100"), "vit_info", "attention 'mha' has no size to choose");
}

TEST(Cli, BenchMeasuresEverySpecAndWritesJson) {
  TempDir dir;
  const std::string small = " --set model.image_size=16 --set model.patch_size=4 --set model.dim=32"
                            " --set model.depth=1 --set model.heads=2 --threads 1 --batch-size 8"
                            " --warmup 1 --windows 3 --window-steps 2";
  Output o = run(kBench + small + " --attention mha '{\"name\":\"mla\",\"kv_rank\":4}' --json " + dir / "b.json");
  ASSERT_EQ(o.status, 0) << o.text;
  json j = read_json_file(dir / "b.json");
  EXPECT_EQ(j["schema"], "vitlab.bench/1");
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][1]["attention"]["kv_rank"], 4);
  for (const auto& r : j["results"])
    for (const char* phase : {"train", "infer"}) {
      EXPECT_EQ(r[phase]["windows"].size(), 3u);
      EXPECT_GT(r[phase]["images_per_s"].get<double>(), 0.0);
    }
  EXPECT_NE(o.text.find("{\"kv_rank\":4,\"name\":\"mla\"}"), std::string::npos) << o.text;
  expect_one_line_error(run(kBench + small + " --attention mlx"), "vit_bench", "unknown attention 'mlx'");
}

TEST(Cli, BadConfigsAreOneLineErrors) {
  TempDir dir;
  auto with_config = [&](const json& j) {
    write_file(dir / "c.json", j.dump());
    return run(kTrain + " --config " + dir / "c.json" + " --out " + dir / "out");
  };
  expect_one_line_error(with_config({{"model", {{"depht", 2}}}}), "vit_train", "model.depht: unknown key");
  expect_one_line_error(with_config({{"train", {{"epochs", "ten"}}}}), "vit_train",
                        "train.epochs: expected an integer");
  expect_one_line_error(with_config({{"model", {{"attention", "flash9"}}}}), "vit_train",
                        "unknown attention 'flash9'");
  expect_one_line_error(with_config({{"model", {{"patch_size", 5}}}}), "vit_train",
                        "model.patch_size: 5 does not divide model.image_size=28");
  // The CUDA-graph step runs only where it can: on the CPU it is refused by name, before any data.
  expect_one_line_error(with_config({{"train", {{"cuda_graph", true}, {"device", "cpu"}}}}), "vit_train",
                        "train.cuda_graph: needs ");
  write_file(dir / "c.json", "{\"model\": {");
  expect_one_line_error(run(kTrain + " --config " + dir / "c.json" + " --out " + dir / "out"), "vit_train",
                        dir / "c.json" + ": invalid JSON");
  EXPECT_FALSE(vitlab::path_exists(dir / "out/result.json"));
}

TEST(Cli, BadDataAreOneLineErrors) {
  TempDir dir;
  vitlab::make_directories(dir / "idx");
  write_file(dir / "idx/train-images-idx3-ubyte", std::string("\0\0\x08\x03\0\0\0\x05", 8));
  write_file(dir / "idx/train-labels-idx1-ubyte", "");
  expect_one_line_error(run(kTrain + " --data idx:" + dir / "idx" + " --out " + dir / "o1"), "vit_train",
                        dir / "idx/train-images-idx3-ubyte: truncated file");
  expect_one_line_error(run(kTrain + " --data idx:" + dir / "nothing/" + " --out " + dir / "o2"), "vit_train",
                        "missing file");
  expect_one_line_error(run(kTrain + " --data idx:" + dir / "nothing" + " --out " + dir / "o2"), "vit_train",
                        "idx:" + dir / "nothing" + ": no such directory");
  vitlab::make_directories(dir / "cifar");
  for (int i = 1; i <= 5; ++i) write_file(dir / ("cifar/data_batch_" + std::to_string(i) + ".bin"), "garbage");
  write_file(dir / "cifar/test_batch.bin", "garbage");
  expect_one_line_error(run(kTrain + " --data cifar10:" + dir / "cifar" + " --out " + dir / "o3"), "vit_train",
                        "data_batch_1.bin: 7 bytes is not a whole number");
  EXPECT_FALSE(vitlab::path_exists(dir / "o1/result.json"));
  EXPECT_FALSE(vitlab::path_exists(dir / "o3/checkpoint"));
  // A failed start leaves no run behind: the same --out works without --resume.
  EXPECT_FALSE(vitlab::path_exists(dir / "o3/run_config.json"));
}

TEST(Cli, UnwritableOutAndBadCheckpoint) {
  TempDir dir;
  write_file(dir / "file", "x");
  expect_one_line_error(run(kTrain + " --data synthetic --out " + dir / "file/sub"), "vit_train", "--out");
  expect_one_line_error(run(kEval + " --checkpoint " + dir / "nothing"), "vit_eval", "no such checkpoint");
  // a checkpoint whose tensors do not match its config
  vitlab::make_directories(dir / "ck");
  write_file(dir / "c.json", tiny_config(1).dump());
  ASSERT_EQ(run(kTrain + " --config " + dir / "c.json" + " --out " + dir / "run").status, 0);
  json cfg = read_json_file(dir / "run/checkpoint/config.json");
  cfg["depth"] = 3;
  write_file(dir / "run/checkpoint/config.json", cfg.dump());
  expect_one_line_error(run(kEval + " --checkpoint " + dir / "run/checkpoint"), "vit_eval",
                        "missing tensor 'blocks.2.norm1.weight'");
  expect_one_line_error(run(kTrain + " --out " + dir / "x" + " --device cuda:7 --data synthetic"), "vit_train",
                        "train.device");
}

TEST(Cli, KilledRunResumesToTheSameResult) {
  TempDir dir;
  write_file(dir / "c.json", tiny_config(6).dump());
  const std::string args = " --config " + dir / "c.json" + " --out ";
  ASSERT_EQ(run(kTrain + args + dir / "full").status, 0);
  json full = read_json_file(dir / "full/result.json");

  // Start the same run, kill -9 it once its first checkpoint exists, then resume it.
  ASSERT_TRUE(vitlab::test::kill_train_when({"--config", dir / "c.json", "--out", dir / "killed"},
                                            dir / "killed/checkpoint/train_state.pt"))
      << "the run ended before it could be killed";
  ASSERT_FALSE(vitlab::path_exists(dir / "killed/result.json"));

  Output resumed = run(kTrain + args + dir / "killed --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.text;
  EXPECT_NE(resumed.text.find("resuming"), std::string::npos);
  json back = read_json_file(dir / "killed/result.json");
  EXPECT_EQ(without_timing(back), without_timing(full));

  // The checkpoint evaluates to the recorded test metrics.
  Output ev = run(kEval + " --checkpoint " + dir / "killed/checkpoint" + " --out " + dir / "eval.json");
  ASSERT_EQ(ev.status, 0) << ev.text;
  json e = read_json_file(dir / "eval.json");
  EXPECT_EQ(e["metrics"]["top1"], full["metrics"]["top1"]);
  EXPECT_EQ(e["metrics"]["confusion"].size(), 10u);
}

// A disk that fills while a checkpoint is written (here a file-size limit, which fails writes as
// ENOSPC does, with EFBIG): one clear error naming the file, the previous checkpoint intact and
// loadable, no partial copy left; --resume once there is room finishes as if nothing happened.
TEST(Cli, FullDiskDuringACheckpointKeepsThePreviousOne) {
  TempDir dir;
  write_file(dir / "c.json", tiny_config(3).dump());
  const std::string args = " --config " + dir / "c.json" + " --out ";
  ASSERT_EQ(run(kTrain + args + dir / "full").status, 0);
  const json full = read_json_file(dir / "full/result.json");
  ASSERT_TRUE(vitlab::test::kill_train_when({"--config", dir / "c.json", "--out", dir / "run"},
                                            dir / "run/checkpoint/train_state.pt"));
  const std::string before = read_text(dir / "run/checkpoint/model.safetensors");

  Output o = run("ulimit -f 64; " + kTrain + args + dir / "run --resume");
  EXPECT_EQ(o.status, 1) << o.text;
  const auto at = o.text.find("vit_train: error: ");  // one line, beside the epoch lines on stdout
  ASSERT_NE(at, std::string::npos) << o.text;
  const std::string error = o.text.substr(at, o.text.find('\n', at) - at);
  EXPECT_NE(error.find("model.safetensors: write failed (File too large)"), std::string::npos) << o.text;
  EXPECT_EQ(read_text(dir / "run/checkpoint/model.safetensors"), before);
  for (const auto& name : list_directory(dir / "run")) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  EXPECT_FALSE(path_exists(dir / "run/result.json"));
  Output ev = run(kEval + " --checkpoint " + dir / "run/checkpoint" + " --out " + dir / "eval.json");
  EXPECT_EQ(ev.status, 0) << ev.text;

  o = run(kTrain + args + dir / "run --resume");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(without_timing(read_json_file(dir / "run/result.json")), without_timing(full));
}

// A run directory has one writer: a second vit_train on it is refused while the first holds it.
TEST(Cli, ASecondRunInTheSameDirectoryIsRefused) {
  TempDir dir;
  write_file(dir / "c.json", tiny_config(1).dump());
  vitlab::ensure_directory(dir / "run", "run");
  const int held = vitlab::try_lock(dir / "run/train.lock");  // as a running vit_train holds it
  ASSERT_GE(held, 0);
  const std::string cmd = kTrain + " --config " + dir / "c.json" + " --out " + dir / "run --resume";
  Output o = run(cmd);
  EXPECT_EQ(o.status, 1) << o.text;
  EXPECT_NE(o.text.find("vit_train: error: --out " + dir / "run" + ": another vit_train is running in this directory"),
            std::string::npos)
      << o.text;
  EXPECT_FALSE(path_exists(dir / "run/run_config.json"));
  vitlab::close_lock(held);
  o = run(cmd);
  EXPECT_EQ(o.status, 0) << o.text;
  EXPECT_TRUE(path_exists(dir / "run/result.json"));
}

// A trained MHA model through rank analysis, conversion to MLA, evaluation and fine-tuning.
TEST(Cli, RanksConvertEvaluateAndFineTune) {
  const std::string ranks = VIT_RANKS, convert = VIT_CONVERT;
  TempDir dir;
  write_file(dir / "c.json", tiny_config(1).dump());
  Output o = run(kTrain + " --config " + dir / "c.json" + " --out " + dir / "src");
  ASSERT_EQ(o.status, 0) << o.text;

  o = run(ranks + " --checkpoint " + dir / "src/checkpoint" + " --out " + dir / "r.json");
  ASSERT_EQ(o.status, 0) << o.text;
  const json r = read_json_file(dir / "r.json");
  ASSERT_EQ(r["layers"].size(), 2u);
  EXPECT_EQ(r["layers"][1]["qk"]["query"]["singular_values"].size(), 32u);
  EXPECT_EQ(r["layers"][1]["ov"]["head"]["size"], 2);

  // Written beside the source run's run_config.json, so vit_eval takes its data settings.
  o = run(convert + " --checkpoint " + dir / "src/checkpoint" + " --to mla --kv-rank 8 --out " + dir / "mla/checkpoint");
  ASSERT_EQ(o.status, 0) << o.text;
  write_file(dir / "mla/run_config.json", read_text(dir / "src/run_config.json"));
  const json c = read_json_file(dir / "mla/checkpoint/conversion.json");
  EXPECT_LT(c["attention_params"]["converted"].get<int64_t>(), c["attention_params"]["source"].get<int64_t>());
  EXPECT_GT(c["layers"][0]["kv_error"].get<double>(), 0.0);

  o = run(kEval + " --checkpoint " + dir / "mla/checkpoint" + " --out " + dir / "e.json");
  ASSERT_EQ(o.status, 0) << o.text;
  // Fine-tuning starts from the converted weights: with a vanishing learning rate and no EMA
  // the result's test accuracy is the converted checkpoint's.
  o = run(kTrain + " --config " + dir / "c.json" + " --init-from " + dir / "mla/checkpoint" +
          " --set train.lr=1e-12 --set train.min_lr=0 --set train.ema_decay=0 --out " + dir / "ft");
  ASSERT_EQ(o.status, 0) << o.text;
  const json ft = read_json_file(dir / "ft/result.json");
  EXPECT_EQ(ft["model"]["attention"]["name"], "mla");
  const json e = read_json_file(dir / "e.json");
  EXPECT_EQ(ft["metrics"]["top1"], e["metrics"]["top1"]);
  EXPECT_NEAR(ft["metrics"]["loss"].get<double>(), e["metrics"]["loss"].get<double>(), 1e-6);
  EXPECT_EQ(ft["init_metrics"]["top1"], e["metrics"]["top1"]);  // recorded before the first step

  // Evaluation at another image size: the position table resampled, the data resized to it.
  o = run(kEval + " --checkpoint " + dir / "src/checkpoint" + " --image-size 24 --out " + dir / "e24.json");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(read_json_file(dir / "e24.json")["data"]["image_size"], 24);
  // Fine-tuning at another size: --set model.* applies on top of the checkpoint's model.
  o = run(kTrain + " --config " + dir / "c.json" + " --init-from " + dir / "src/checkpoint" +
          " --set model.image_size=24 --set data.image_size=24 --set train.epochs=1 --set data.synthetic.train=400"
          " --set data.val_size=100 --out " + dir / "ft24");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(read_json_file(dir / "ft24/result.json")["model"]["image_size"], 24);
  // ... and to another label set: a new classifier, the rest from the checkpoint.
  o = run(kTrain + " --config " + dir / "c.json" + " --init-from " + dir / "src/checkpoint" +
          " --set model.num_classes=4 --set data.synthetic.classes=4 --set train.epochs=1"
          " --set data.synthetic.train=400 --set data.val_size=100 --out " + dir / "ft4");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(read_json_file(dir / "ft4/result.json")["model"]["num_classes"], 4);

  // Written as a timm checkpoint: timm's config beside the weights; vit_eval then uses timm's
  // evaluation transform from it (vitlab's own: whole images, bilinear) and needs --data.
  o = run(convert + " --checkpoint " + dir / "src/checkpoint" + " --to timm --out " + dir / "timm");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(read_json_file(dir / "timm/config.json")["pretrained_cfg"]["crop_pct"], 1.0);
  expect_one_line_error(run(kEval + " --checkpoint " + dir / "timm"), "vit_eval", "--data");
  o = run(kEval + " --checkpoint " + dir / "timm/model.safetensors --timm-config " + dir / "timm/config.json" +
          " --data synthetic --out " + dir / "et.json");
  ASSERT_EQ(o.status, 0) << o.text;
  const json et = read_json_file(dir / "et.json");
  EXPECT_EQ(et["data"]["image_size"], 16);
  EXPECT_EQ(et["data"]["interpolation"], "bilinear");
  expect_one_line_error(run(convert + " --checkpoint " + dir / "mla/checkpoint" + " --to timm --out " + dir / "t2"),
                        "vit_convert", "model.attention");

  expect_one_line_error(run(convert + " --checkpoint " + dir / "src/checkpoint" + " --to gqa --out " + dir / "g"),
                        "vit_convert", "--kv-heads");
  expect_one_line_error(run(kTrain + " --config " + dir / "c.json" + " --init-from " + dir / "mla/checkpoint" +
                            " --set model.dim=8 --out " + dir / "bad"),
                        "vit_train", "--init-from");
  expect_one_line_error(run(ranks + " --checkpoint " + dir / "mla/checkpoint" + " --out " + dir / "r2.json"), "vit_ranks",
                        "MHA");
}

// A backbone as DINOv2 and the models built on it ship: timm's layout, num_classes 0, a SwiGLU
// MLP named in model_args. Rank analysis reads it, fine-tuning gives it a classifier, and
// evaluating it without one is a one-line error.
TEST(Cli, BackboneWithoutClassifierFineTunes) {
  TempDir dir;
  const json cfg{{"architecture", "vit_tiny_patch16_224"}, {"num_classes", 0},
                 {"model_args", {{"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"patch_size", 4}, {"img_size", 16},
                                 {"in_chans", 1}, {"reg_tokens", 2}, {"init_values", 0.1},
                                 {"mlp_layer", "timm.layers.SwiGLUPacked"}, {"act_layer", "torch.nn.SiLU"}}},
                 {"pretrained_cfg", {{"input_size", {1, 16, 16}}, {"mean", {0.5}}, {"std", {0.5}}}}};
  ViT backbone(model_from_timm_config(cfg, "config.json"));
  vitlab::ensure_directory(dir / "backbone", "backbone");
  save_safetensors(dir / "backbone/model.safetensors", model_tensors(backbone), {{"format", "pt"}});
  write_file(dir / "backbone/config.json", cfg.dump());
  write_file(dir / "c.json", tiny_config(1).dump());

  Output o = run(std::string(VIT_RANKS) + " --checkpoint " + dir / "backbone" + " --out " + dir / "r.json");
  ASSERT_EQ(o.status, 0) << o.text;
  expect_one_line_error(run(kEval + " --checkpoint " + dir / "backbone --data synthetic"), "vit_eval",
                        "model.num_classes: 0, a backbone without a classifier");
  const std::string train = kTrain + " --config " + dir / "c.json" + " --init-from " + dir / "backbone" +
                            " --set data.synthetic.train=400 --set data.val_size=100";
  expect_one_line_error(run(train + " --out " + dir / "no-classes"), "vit_train", "model.num_classes=10");
  o = run(train + " --set model.num_classes=10 --out " + dir / "ft");
  ASSERT_EQ(o.status, 0) << o.text;
  const json r = read_json_file(dir / "ft/result.json");
  EXPECT_EQ(r["model"]["num_classes"], 10);
  EXPECT_EQ(r["model"]["mlp"], "swiglu");
  EXPECT_TRUE(r.contains("init_metrics"));
  EXPECT_EQ(read_checkpoint_config(dir / "ft/checkpoint").reg_tokens, 2);  // the backbone's model
}
