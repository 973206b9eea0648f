#include "vitlab/train/trainer.h"

#include <chrono>
#include <cmath>

#include "vitlab/analysis/accounting.h"
#include "vitlab/attention/plugins.h"
#include "vitlab/data/dataset.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/error.h"
#include "vitlab/io/files.h"
#include "vitlab/io/process.h"
#include "vitlab/model/vit.h"
#include "vitlab/results/run_record.h"
#include "vitlab/seed.h"
#include "vitlab/train/checkpoint.h"
#include "vitlab/train/distributed.h"
#include "vitlab/train/ema.h"
#include "vitlab/train/evaluate.h"
#include "vitlab/train/cuda_graph.h"
#include "vitlab/train/optim.h"
#include "vitlab/train/progress.h"
#include "vitlab/train/step.h"

namespace vitlab {
namespace {

// The recorded config of an existing run must equal the requested one, but for where and how it
// runs (erase_execution_keys), which may change between sessions.
// model.label_names, which a run fills in from its image folder, counts only where it is asked for.
void check_same_run(const std::string& path, const RunConfig& cfg) {
  json before = to_json(run_from_json(read_json_file(path)));
  json now = to_json(cfg);
  if (!now["model"].contains("label_names")) before["model"].erase("label_names");
  // A plugin may be loaded from another path when the run resumes.
  for (auto* j : {&before, &now}) (*j)["model"]["attention"].erase("plugin");
  for (auto* j : {&before, &now}) erase_execution_keys((*j)["train"]);
  json patch = json::diff(before, now);
  if (!patch.empty()) {
    const auto& op = patch[0];
    std::string key = op["path"].get<std::string>().substr(1);
    std::replace(key.begin(), key.end(), '/', '.');
    fail("--resume: ", key, " differs from the run recorded in ", path,
         op.contains("value") ? " (now " + dump_json(op["value"]) + ")" : std::string(""));
  }
}

// The order of the samples one process loads in an epoch: the whole permutation, or with data
// parallel on a streamed folder, each global batch's slice of this rank, one after the other.
torch::Tensor rank_order(const torch::Tensor& perm, int64_t batch, int64_t steps, const DataParallel* dp) {
  if (!dp) return perm;
  const int64_t local = batch / dp->world();
  auto rows = perm.narrow(0, 0, steps * batch).view({steps, dp->world(), local});  // (steps, world, B / world)
  return rows.select(1, dp->rank()).reshape({-1});
}

}  // namespace

json train(const TrainRequest& req) {
  RunConfig cfg = req.cfg;
  cfg.validate();
  const TrainConfig& tc = cfg.train;
  const int threads = configure_threads(tc.threads);
  // Several processes (RANK, WORLD_SIZE, ...): rank 0 alone writes the run directory.
  const DistEnv dist = DistEnv::from_environment();
  const torch::Device device = resolve_device(dist.device(tc.device));
  configure_tf32(tc.tf32);
  const bool bf16 = uses_bf16(tc.precision, device);
  std::unique_ptr<DataParallel> dp;
  if (dist.active()) {
    if (tc.batch_size % dist.world != 0)
      fail("train.batch_size: ", tc.batch_size, " is not divisible by WORLD_SIZE=", dist.world);
    dp = std::make_unique<DataParallel>(dist, device);
  }
  const bool writer = dist.rank == 0;
  if (tc.cuda_graph) require_cuda_graphs(cfg, device, dp.get());

  ensure_directory(req.out_dir, "--out");
  // One writer per run directory: a second vit_train on it (a sweep's shard and a hand-started
  // run, say) would interleave two runs' checkpoints. Held until this function returns.
  struct RunLock {
    int fd = -1;
    ~RunLock() { close_lock(fd); }
  } run_lock;
  if (writer && (run_lock.fd = try_lock(join_path(req.out_dir, "train.lock"))) < 0)
    fail("--out ", req.out_dir, ": another vit_train is running in this directory");
  const std::string config_path = join_path(req.out_dir, "run_config.json");
  const std::string ckpt_dir = join_path(req.out_dir, "checkpoint");
  if (writer && path_exists(config_path)) {
    if (!req.resume)
      fail("--out ", req.out_dir, ": already holds a run; pass --resume to continue it or choose another directory");
    check_same_run(config_path, cfg);
  }

  // The model first: its errors (an unknown attention, say) come before any data is read.
  torch::manual_seed(mix_seed(tc.seed, kSeedInit, 0));
  ViT model(cfg.model);
  if (!req.init_from.empty()) {
    const std::string found = find_checkpoint(req.init_from);
    if (found.empty()) fail("--init-from ", req.init_from, ": not a vitlab checkpoint");
    try {
      load_weights(model, join_path(found, "model.safetensors"), /*fine_tune=*/true);
    } catch (const Error& e) {
      fail("--init-from ", req.init_from, ": the weights do not fit the model (", e.what(), ")");
    }
  }
  model->to(device);

  Splits data = load_data(cfg.data, &cfg.model);
  if (data.train.size() == 0) fail("data.spec: '", cfg.data.spec, "' has no training split");
  check_data_fits_model(data, cfg.model);
  if (tc.augment.rrc && !data.train.streamed())
    fail("train.augment.rrc: needs an image folder (folder:DIR); in-memory data ('", cfg.data.spec,
         "') takes train.augment.crop_padding and flip");
  // The classes by name, from the folder, go with the checkpoint (timm's label_names).
  if (cfg.model.label_names.empty() && static_cast<int>(data.class_names.size()) == cfg.model.num_classes) {
    cfg.model.label_names = data.class_names;
    model->cfg.label_names = data.class_names;
  }
  const Dataset train_d = to_device(data.train, device), val_d = to_device(data.val, device),
                test_d = to_device(data.test, device);
  // Recorded once the config has proved loadable, so a failed start leaves no run behind.
  if (writer) atomic_write(config_path, dump_json(to_json(cfg), 2) + "\n");
  if (dp) dp->attach(model->parameters());  // equal already (same seed); now by construction
  auto optimizer = make_optimizer(model, tc);
  std::unique_ptr<Ema> ema;
  ViT eval_model = model;  // the EMA, when on, is evaluated through a second model
  if (tc.ema_decay > 0) {
    ema = std::make_unique<Ema>(model, tc.ema_decay);
    eval_model = ViT(cfg.model);
    eval_model->to(device);
  }

  json progress{{"epoch", 0}, {"history", json::array()}, {"best_top1", -1.0}, {"best_epoch", 0},
                {"train_seconds", 0.0}, {"train_images", 0}, {"skipped_images", 0}};
  if (req.resume) {
    const std::string found = find_checkpoint(ckpt_dir);
    if (!found.empty()) {
      load_weights(model, join_path(found, "model.safetensors"));
      progress = load_train_state(found, model, *optimizer, ema.get(), device);
      if (!progress.contains("skipped_images")) progress["skipped_images"] = 0;  // checkpoints before it
      if (writer) std::printf("resuming %s after epoch %d\n", req.out_dir.c_str(), progress["epoch"].get<int>());
    }
  }

  // One graph of the evaluated model's forward for the whole run (evaluate.h says why).
  std::unique_ptr<GraphedForward> eval_graph;
  if (tc.cuda_graph) eval_graph = std::make_unique<GraphedForward>(eval_model, bf16);

  // A fine-tuning run records where it starts: the initial weights on the test split.
  if (!req.init_from.empty() && !progress.contains("init_metrics")) {
    std::unique_ptr<GraphedForward> init_graph;  // the EMA's model is another one
    if (tc.cuda_graph && eval_model.ptr() != model.ptr()) init_graph = std::make_unique<GraphedForward>(model, bf16);
    EvalResult init = evaluate(model, test_d, tc.eval_batch_size, bf16, init_graph ? init_graph.get() : eval_graph.get(),
                               dp.get());
    progress["skipped_images"] = progress["skipped_images"].get<int64_t>() + init.skipped;
    progress["init_metrics"] = {{"top1", init.top1}, {"top5", init.top5}, {"loss", init.loss}};
  }

  const int64_t n_train = train_d.size(), batch = tc.batch_size;
  const int64_t steps_per_epoch = n_train / batch;
  if (steps_per_epoch == 0)
    fail("train.batch_size: ", batch, " is larger than the ", n_train, " training images");
  const int64_t total_steps = steps_per_epoch * tc.epochs;
  const int64_t warmup = std::llround(tc.warmup_epochs * steps_per_epoch);
  std::unique_ptr<GraphedTrainStep> graphed;
  if (tc.cuda_graph) graphed = std::make_unique<GraphedTrainStep>(model, *optimizer, ema.get(), cfg);
  Progress bar;
  reset_peak_memory(device);

  for (int epoch = progress["epoch"].get<int>(); epoch < tc.epochs; ++epoch) {
    const auto perm = epoch_order(n_train, static_cast<uint64_t>(tc.seed), epoch);
    const bool local = train_d.streamed() && dp;  // each process decodes only its slice
    LoaderOptions lo{device, &tc.augment, static_cast<uint64_t>(tc.seed), epoch};
    auto loader = local ? make_loader(train_d, rank_order(perm, batch, steps_per_epoch, dp.get()), batch / dp->world(),
                                      /*drop_last=*/true, lo)
                        : make_loader(train_d, perm, batch, /*drop_last=*/true, lo);
    model->train();
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    double lr = tc.lr;
    synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t step = epoch * steps_per_epoch + s;
      torch::manual_seed(mix_seed(tc.seed, kSeedStep, step));  // augmentation, dropout, drop-path
      lr = lr_at(step, total_steps, warmup, tc);
      set_lr(*optimizer, lr);
      const Dataset b = loader->batch(s);
      const StepOutput out = graphed ? (*graphed)(b.images, b.labels, lr)
                                     : train_step(model, *optimizer, ema.get(), b.images, b.labels, cfg, dp.get(), local);
      {
        torch::NoGradGuard no_grad;
        loss_sum += out.loss.to(torch::kDouble);
        correct += out.logits.argmax(1).eq(out.labels).sum();
      }
      if (writer && bar.due()) {  // the only host synchronisation inside the epoch, and only on a terminal
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double ips = (s + 1) * batch / secs;
        const double left = (total_steps - step - 1) * batch / ips;
        char line[256];
        std::snprintf(line, sizeof line, "epoch %d/%d  step %lld/%lld  loss %.4f  top1 %.2f%%  %.0f img/s  ETA %s",
                      epoch + 1, tc.epochs, static_cast<long long>(s + 1), static_cast<long long>(steps_per_epoch),
                      loss_sum.item<double>() / (s + 1), 100.0 * correct.item<int64_t>() / ((s + 1) * batch), ips,
                      format_duration(left).c_str());
        bar.update(line);
      }
    }
    auto skipped = torch::tensor(loader->skipped(), torch::kLong).to(device);
    if (dp) {  // every process's share: the mean of the per-process means, all the hits and skips
      dp->sum(loss_sum);
      loss_sum.div_(dp->world());
      dp->sum(correct);
      dp->sum(skipped);
    }
    progress["skipped_images"] = progress["skipped_images"].get<int64_t>() + skipped.item<int64_t>();
    synchronize(device);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double train_loss = loss_sum.item<double>() / steps_per_epoch;
    const double train_top1 = 100.0 * correct.item<int64_t>() / (steps_per_epoch * batch);

    if (ema) ema->copy_to(eval_model);
    json row{{"epoch", epoch + 1}, {"lr", lr}, {"train_loss", train_loss}, {"train_top1", train_top1},
             {"val_loss", nullptr}, {"val_top1", nullptr}, {"images_per_s", steps_per_epoch * batch / secs},
             {"seconds", secs}};
    std::string val_text;
    if (val_d.size() > 0) {
      EvalResult val = evaluate(eval_model, val_d, tc.eval_batch_size, bf16, eval_graph.get(), dp.get());
      progress["skipped_images"] = progress["skipped_images"].get<int64_t>() + val.skipped;
      row["val_loss"] = val.loss;
      row["val_top1"] = val.top1;
      if (val.top1 > progress["best_top1"].get<double>()) {
        progress["best_top1"] = val.top1;
        progress["best_epoch"] = epoch + 1;
      }
      char buf[96];
      std::snprintf(buf, sizeof buf, "  val loss %.4f top1 %.2f%%", val.loss, val.top1);
      val_text = buf;
    }
    progress["history"].push_back(row);
    progress["epoch"] = epoch + 1;
    progress["train_seconds"] = progress["train_seconds"].get<double>() + secs;
    progress["train_images"] = progress["train_images"].get<int64_t>() + steps_per_epoch * batch;
    if (writer) save_checkpoint(ckpt_dir, model, optimizer.get(), ema.get(), progress);

    char line[320];
    std::snprintf(line, sizeof line, "epoch %3d/%d  lr %.2e  train loss %.4f top1 %.2f%%%s  %.0f img/s  %.1fs",
                  epoch + 1, tc.epochs, lr, train_loss, train_top1, val_text.c_str(), steps_per_epoch * batch / secs,
                  secs);
    if (writer) bar.epoch_done(line);
  }

  if (ema) ema->copy_to(eval_model);
  EvalResult test = evaluate(eval_model, test_d, tc.eval_batch_size, bf16, eval_graph.get(), dp.get());
  const double train_seconds = progress["train_seconds"].get<double>();
  json acct = accounting_json(eval_model);
  json data_record = data.describe();
  data_record["spec"] = cfg.data.spec;
  if (data.train.streamed())
    data_record["skipped_images"] = progress["skipped_images"].get<int64_t>() + test.skipped;
  json record{
      {"schema", kRunSchema},
      {"run_id", base_name(req.out_dir)},
      {"created", utc_timestamp()},
      {"git_commit", git_commit()},
      {"host", host_record(device, threads)},
      {"model", to_json(cfg.model)},
      {"data", data_record},
      {"train", to_json(tc)},
      {"params", acct["params"]},
      {"flops_per_image", acct["flops_per_image"]},
      {"kv_floats_per_token", acct["kv_floats_per_token"]},
      {"attention", acct["attention"]},
      {"metrics", {{"top1", test.top1}, {"top5", test.top5}, {"loss", test.loss},
                   {"best_top1", progress["best_epoch"] == 0 ? json(nullptr) : progress["best_top1"]},
                   {"best_epoch", progress["best_epoch"] == 0 ? json(nullptr) : progress["best_epoch"]}}},
      {"history", progress["history"]},
      {"timing", {{"train_seconds", train_seconds},
                  {"images_per_s", train_seconds > 0 ? progress["train_images"].get<int64_t>() / train_seconds : 0.0},
                  {"test_images_per_s", test.images_per_s},
                  {"peak_device_bytes", peak_memory_bytes(device)},
                  {"precision", math_precision(tc.precision, tc.tf32, device)}}},
      {"checkpoint", ckpt_dir}};
  // What the process held on the GPU, cached blocks and graph pools included: what limits how
  // many runs share one GPU (a sweep's --devices 0,0,0,0).
  if (device.is_cuda()) record["timing"]["peak_reserved_bytes"] = peak_reserved_bytes(device);
  if (!req.init_from.empty()) {
    record["init_from"] = req.init_from;
    record["init_metrics"] = progress["init_metrics"];
  }
  if (dp) record["distributed"] = json{{"world_size", dp->world()}, {"backend", dp->backend()}};
  if (!loaded_plugins().empty()) record["plugins"] = plugins_json();
  if (writer) write_result(req.out_dir, record);
  if (dp) dp->barrier();  // the others end once the results are written
  return record;
}

}  // namespace vitlab
