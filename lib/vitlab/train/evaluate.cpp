#include "vitlab/train/evaluate.h"

#include <chrono>

#include "vitlab/compat.h"
#include "vitlab/data/loader.h"
#include "vitlab/device.h"
#include "vitlab/train/cuda_graph.h"

namespace vitlab {

EvalResult evaluate(ViT& model, const Dataset& data, int64_t batch_size, bool bf16, GraphedForward* graphed,
                    DataParallel* dp, int64_t predictions) {
  TORCH_CHECK(!dp || predictions == 0, "evaluate: per-image predictions are one process's");
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  const int64_t classes = model->cfg.num_classes, k = std::min<int64_t>(5, classes);
  auto opts = torch::TensorOptions().device(device);
  auto loss_sum = torch::zeros({}, opts.dtype(torch::kDouble));
  auto top1 = torch::zeros({}, opts.dtype(torch::kLong)), topk = torch::zeros({}, opts.dtype(torch::kLong));
  auto confusion = torch::zeros({classes * classes}, opts.dtype(torch::kLong));
  int64_t count = 0;
  std::vector<torch::Tensor> labels, top_classes, top_probs;  // per batch, with predictions

  synchronize(device);
  auto start = std::chrono::steady_clock::now();
  // This process's share: whole batches of the one-process evaluation, so that every image is
  // in a batch of the same size, and gets the same logits, as there.
  const int64_t n = data.size(), rank = dp ? dp->rank() : 0, world = dp ? dp->world() : 1;
  const int64_t batches = (n + batch_size - 1) / batch_size;
  auto share = torch::arange(std::min(n, batches * rank / world * batch_size),
                             std::min(n, batches * (rank + 1) / world * batch_size), torch::kLong);
  auto loader = make_loader(data, share, batch_size, /*drop_last=*/false, LoaderOptions{device});
  for (int64_t s = 0; s < loader->steps(); ++s) {
    auto b = loader->batch(s);
    count += b.size();
    if (b.size() == 0) continue;
    torch::Tensor logits;
    if (graphed) {
      logits = (*graphed)(b.images).to(torch::kFloat);  // (b, classes)
    } else {
      compat::AutocastBf16 autocast(device.type(), bf16);
      logits = model->forward(preprocess(b.images, model->cfg)).to(torch::kFloat);  // (b, classes)
    }
    loss_sum += torch::nll_loss(torch::log_softmax(logits, 1), b.labels, {}, at::Reduction::Sum).to(torch::kDouble);
    auto pred = std::get<1>(logits.topk(k, 1));                                             // (b, k)
    auto hit = pred.eq(b.labels.view({-1, 1}));                                         // (b, k)
    top1 += hit.select(1, 0).sum();
    topk += hit.any(1).sum();
    confusion += torch::bincount(b.labels * classes + pred.select(1, 0), {}, classes * classes);
    if (predictions > 0) {
      auto [p, c] = torch::softmax(logits, 1).topk(std::min(predictions, classes), 1);  // (b, k) each
      labels.push_back(b.labels.cpu()), top_probs.push_back(p.cpu()), top_classes.push_back(c.cpu());
    }
  }
  auto counts = torch::tensor({count, loader->skipped()}, torch::kLong).to(device);
  if (dp) {  // exact sums of counts; the loss's sum is a double
    for (torch::Tensor* t : {&loss_sum, &top1, &topk, &confusion, &counts}) dp->sum(*t);
  }
  synchronize(device);
  EvalResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  counts = counts.cpu();
  r.images = counts[0].item<int64_t>();
  r.skipped = counts[1].item<int64_t>();
  const double total = std::max<double>(1.0, static_cast<double>(r.images));
  r.loss = loss_sum.item<double>() / total;
  r.top1 = 100.0 * top1.item<int64_t>() / total;
  r.top5 = 100.0 * topk.item<int64_t>() / total;
  r.confusion = confusion.view({classes, classes}).cpu();
  r.images_per_s = r.images / std::max(r.seconds, 1e-9);
  if (predictions > 0 && !labels.empty())
    r.labels = torch::cat(labels), r.top_classes = torch::cat(top_classes), r.top_probs = torch::cat(top_probs);
  if (was_training) model->train();
  return r;
}

json EvalResult::to_json(bool detailed) const {
  json j{{"images", images}, {"skipped_images", skipped}, {"loss", loss}, {"top1", top1}, {"top5", top5},
         {"seconds", seconds}, {"images_per_s", images_per_s}};
  if (detailed) {
    const int64_t classes = confusion.size(0);
    auto c = confusion.contiguous();
    json per_class = json::array(), matrix = json::array();
    for (int64_t i = 0; i < classes; ++i) {
      auto row = c[i];
      const int64_t total = row.sum().item<int64_t>();
      per_class.push_back(total ? 100.0 * row[i].item<int64_t>() / total : 0.0);
      matrix.push_back(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + classes));
    }
    j["per_class_top1"] = per_class;
    j["confusion"] = matrix;
  }
  return j;
}

}  // namespace vitlab
