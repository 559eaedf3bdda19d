// Margin loss with distance-weighted sampling (Wu, Manmatha, Smola, Krähenbühl, "Sampling
// Matters in Deep Embedding Learning", ICCV 2017), as in the RetrievalGuard setup:
//   loss(i, j) = max(0, margin + y_ij (D_ij - beta)),  y = +1 positive, -1 negative,
// over every positive pair of a class-balanced batch and one negative per pair drawn with
// probability proportional to 1/q(d), q(d) ~ d^(k-2) (1 - d^2/4)^((k-3)/2) being the
// density of distances between uniform points on the unit sphere in R^k.
#include "rguard/training.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/tensors.hpp"

namespace rguard {

std::vector<ParamSpec> train_param_specs(const char* default_epochs) {
  return {
      {.name = "train.epochs", .type = ParamType::Int, .default_value = default_epochs,
       .doc = "training epochs; 0 = no training (the weights as initialised or loaded)", .min = 0},
      {.name = "train.batch", .type = ParamType::Int, .default_value = "128", .doc = "images per batch", .min = 4},
      {.name = "train.per_class", .type = ParamType::Int, .default_value = "16",
       .doc = "images per class in a class-balanced batch", .min = 2},
      {.name = "train.lr", .type = ParamType::Float, .default_value = "0.001", .doc = "Adam learning rate",
       .min = 0, .min_exclusive = true},
      {.name = "train.weight_decay", .type = ParamType::Float, .default_value = "0", .doc = "Adam weight decay",
       .min = 0},
      {.name = "train.noise_sigma", .type = ParamType::Float, .default_value = "0.25",
       .doc = "Gaussian augmentation sigma, [0,1] pixel units (train at the certification sigma); 0 = none, "
              "above 100 the noise drowns the pixels",
       .min = 0, .max = 100},
      {.name = "train.margin", .type = ParamType::Float, .default_value = "0.2", .doc = "margin gamma of the margin loss",
       .min = 0, .min_exclusive = true},
      {.name = "train.beta0", .type = ParamType::Float, .default_value = "1.2", .doc = "initial boundary beta",
       .min = 0},
      {.name = "train.beta_lr", .type = ParamType::Float, .default_value = "0.0005", .doc = "learning rate of beta",
       .min = 0},
      {.name = "train.augment", .type = ParamType::String, .default_value = "none",
       .doc = "crop_flip: random resized crop (area 8-100%, aspect 3/4-4/3) and horizontal flip per image",
       .choices = "none|crop_flip"},
      {.name = "train.lr_milestones", .type = ParamType::IntList, .default_value = "[]",
       .doc = "epochs after which the learning rate is multiplied by lr_gamma", .min = 1},
      {.name = "train.lr_gamma", .type = ParamType::Float, .default_value = "0.3",
       .doc = "learning-rate factor at each milestone", .min = 0, .min_exclusive = true},
  };
}

TrainConfig parse_train_config(const Params& p) {
  TrainConfig c;
  c.epochs = p.get_int("train.epochs");
  c.batch = p.get_int("train.batch");
  c.per_class = p.get_int("train.per_class");
  c.lr = p.get_float("train.lr");
  c.weight_decay = p.get_float("train.weight_decay");
  c.noise_sigma = p.get_float("train.noise_sigma");
  c.margin = p.get_float("train.margin");
  c.beta0 = p.get_float("train.beta0");
  c.beta_lr = p.get_float("train.beta_lr");
  c.lr_milestones = p.get_int_list("train.lr_milestones");
  c.augment = p.get_string("train.augment") == "crop_flip";
  c.lr_gamma = p.get_float("train.lr_gamma");
  return c;
}

namespace {

// Negatives drawn with weight 1/q(d) (distance-weighted sampling), distances clipped
// below at 0.5 as in the paper; rows without a usable weight fall back to uniform.
torch::Tensor sample_negatives(const torch::Tensor& distance, const torch::Tensor& negative_mask,
                               std::int64_t dim, at::Generator& generator) {
  auto d = distance.detach().clamp_min(0.5);
  auto log_weight = (2.0 - static_cast<double>(dim)) * d.log() -
                    (static_cast<double>(dim) - 3.0) / 2.0 * (1.0 - 0.25 * d * d).clamp_min(1e-8).log();
  log_weight = log_weight.masked_fill(~negative_mask, -std::numeric_limits<double>::infinity());
  auto row_max = std::get<0>(log_weight.max(1, true)).clamp_min(-1e30);
  auto weight = (log_weight - row_max).exp() * negative_mask.to(torch::kFloat);
  auto usable = weight.sum(1, true) > 0;
  weight = torch::where(usable, weight, negative_mask.to(torch::kFloat));
  return torch::multinomial(weight, 1, true, generator).squeeze(1);
}

}  // namespace

at::Tensor random_resized_crop_flip(const at::Tensor& images, at::Generator& generator) {
  const std::int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  auto out = torch::empty_like(images);
  auto draws = at::rand({b, 5}, generator);  // area, log-aspect, x, y, flip
  for (std::int64_t i = 0; i < b; ++i) {
    const double area = (0.08 + 0.92 * draws[i][0].item<double>()) * static_cast<double>(h * w);
    const double aspect = std::exp(std::log(3.0 / 4.0) + (std::log(4.0 / 3.0) - std::log(3.0 / 4.0)) * draws[i][1].item<double>());
    const auto cw = std::clamp<std::int64_t>(std::llround(std::sqrt(area * aspect)), 1, w);
    const auto ch = std::clamp<std::int64_t>(std::llround(std::sqrt(area / aspect)), 1, h);
    const auto x = static_cast<std::int64_t>(draws[i][2].item<double>() * static_cast<double>(w - cw + 1)) ;
    const auto y = static_cast<std::int64_t>(draws[i][3].item<double>() * static_cast<double>(h - ch + 1));
    auto crop = images[i].slice(1, std::min(y, h - ch), std::min(y, h - ch) + ch).slice(2, std::min(x, w - cw), std::min(x, w - cw) + cw);
    auto resized = torch::nn::functional::interpolate(
        crop.unsqueeze(0), torch::nn::functional::InterpolateFuncOptions().size(std::vector<std::int64_t>{h, w})
                               .mode(torch::kBilinear).align_corners(false));
    if (draws[i][4].item<double>() < 0.5) resized = resized.flip({3});
    out[i].copy_(resized.squeeze(0).clamp(0.0, 1.0));
  }
  return out;
}

void train_backbone(Backbone& backbone, const ImageSet& train, const TrainConfig& config, std::uint64_t seed,
                    const TrainProgress& progress, const TrainCheckpoint* resume, const CheckpointSink& checkpoint) {
  if (config.epochs == 0) return;
  const auto labels_cpu = train.labels.to(torch::kCPU).contiguous();
  std::map<std::int64_t, std::vector<std::int64_t>> by_class;
  for (std::int64_t i = 0; i < labels_cpu.size(0); ++i) by_class[labels_cpu[i].item<std::int64_t>()].push_back(i);
  if (by_class.size() < 2)
    throw Error("training needs at least two classes in the train split; check the dataset's train classes");

  const std::int64_t classes_per_batch =
      std::clamp<std::int64_t>(config.batch / config.per_class, 2, static_cast<std::int64_t>(by_class.size()));
  const std::int64_t per_class = std::max<std::int64_t>(2, config.batch / classes_per_batch);
  const std::int64_t batches_per_epoch = std::max<std::int64_t>(1, train.size() / (classes_per_batch * per_class));
  std::vector<std::int64_t> class_ids;
  for (const auto& [label, rows] : by_class) class_ids.push_back(label);

  at::Generator generator = at::detail::createCPUGenerator(seed);
  auto beta = torch::full({1}, config.beta0, torch::TensorOptions().dtype(torch::kFloat).requires_grad(true));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(backbone.trainable_parameters(),
                      std::make_unique<torch::optim::AdamOptions>(
                          torch::optim::AdamOptions(config.lr).weight_decay(config.weight_decay)));
  groups.emplace_back(std::vector<torch::Tensor>{beta},
                      std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(config.beta_lr)));
  torch::optim::Adam optimiser(std::move(groups), torch::optim::AdamOptions(config.lr));
  std::int64_t first_epoch = 0;
  if (resume) {
    first_epoch = resume->epochs_done;
    {
      torch::NoGradGuard no_grad;
      beta.fill_(resume->beta);
    }
    torch::serialize::InputArchive archive;
    std::istringstream bytes(resume->optimiser);
    archive.load_from(bytes);
    optimiser.load(archive);
    generator.set_state(torch::tensor(std::vector<std::uint8_t>(resume->generator.begin(), resume->generator.end()), torch::kUInt8));
  }

  const auto device = backbone.state().empty() ? torch::Device(torch::kCPU) : backbone.state().front().second.device();
  backbone.set_training(true);
  const std::int64_t total = config.epochs * batches_per_epoch * classes_per_batch * per_class;
  std::int64_t seen = first_epoch * batches_per_epoch * classes_per_batch * per_class;
  for (std::int64_t epoch = first_epoch; epoch < config.epochs; ++epoch) {
    for (std::int64_t step = 0; step < batches_per_epoch; ++step) {
      // Class-balanced batch: classes without replacement, images with replacement.
      auto class_order = torch::randperm(static_cast<std::int64_t>(class_ids.size()), generator);
      std::vector<std::int64_t> rows;
      for (std::int64_t c = 0; c < classes_per_batch; ++c) {
        const auto& members = by_class[class_ids[static_cast<std::size_t>(class_order[c].item<std::int64_t>())]];
        auto picks = torch::randint(static_cast<std::int64_t>(members.size()), {per_class}, generator);
        for (std::int64_t k = 0; k < per_class; ++k)
          rows.push_back(members[static_cast<std::size_t>(picks[k].item<std::int64_t>())]);
      }
      auto index = torch::tensor(rows, torch::kLong);
      auto images = as_pixels(train.images.index_select(0, index));
      if (config.augment) images = random_resized_crop_flip(images, generator);
      auto labels = labels_cpu.index_select(0, index).to(device);
      if (config.noise_sigma > 0)
        images = images + config.noise_sigma * at::normal(0.0, 1.0, images.sizes(), generator);
      auto embedding = backbone.forward(images.to(device));
      check_embedding_shape(embedding, images.size(0), backbone.embedding_dim(), "the backbone being trained");
      // Stop before a non-finite step spoils the weights: the last checkpoint stays good.
      if (!embedding.isfinite().all().item<bool>())
        throw Error(fmt::format("training diverged in epoch {}, step {}: the backbone returned non-finite embeddings; "
                                "lower backbone.train.lr or check its forward pass (the last epoch's checkpoint is kept)",
                                epoch + 1, step + 1));
      const std::int64_t b = embedding.size(0), k = embedding.size(1);
      auto distance = (2.0 - 2.0 * embedding.matmul(embedding.t())).clamp_min(1e-8).sqrt();
      auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
      auto eye = torch::eye(b, torch::TensorOptions().dtype(torch::kBool).device(device));
      auto positive_mask = same & ~eye;
      auto negative_mask = ~same;
      auto pairs = positive_mask.nonzero();  // [P, 2] (anchor, positive)
      auto negatives = sample_negatives(distance.cpu(), negative_mask.cpu(), k, generator).to(device);
      auto anchors = pairs.select(1, 0);
      auto d_ap = distance.index({anchors, pairs.select(1, 1)});
      auto d_an = distance.index({anchors, negatives.index_select(0, anchors)});
      auto beta_d = beta.to(device);
      auto loss_pos = torch::relu(d_ap - beta_d + config.margin);
      auto loss_neg = torch::relu(beta_d - d_an + config.margin);
      auto active = ((loss_pos > 0).sum() + (loss_neg > 0).sum()).clamp_min(1).to(torch::kFloat);
      auto loss = (loss_pos.sum() + loss_neg.sum()) / active;
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value))
        throw Error(fmt::format("training diverged in epoch {}, step {}: the loss is {}; lower backbone.train.lr "
                                "or check the backbone's forward pass (the last epoch's checkpoint is kept)",
                                epoch + 1, step + 1, loss_value));
      optimiser.zero_grad();
      loss.backward();
      optimiser.step();
      seen += b;
      if (progress) progress(seen, total, loss_value);
    }
    // Multistep schedule (the paper: x0.3 after epochs 30, 55, 75) on the backbone's group.
    if (std::find(config.lr_milestones.begin(), config.lr_milestones.end(), epoch + 1) != config.lr_milestones.end()) {
      auto& options = static_cast<torch::optim::AdamOptions&>(optimiser.param_groups()[0].options());
      options.lr(options.lr() * config.lr_gamma);
    }
    if (checkpoint) {
      TrainCheckpoint state;
      state.epochs_done = epoch + 1;
      state.beta = beta.item<double>();
      torch::serialize::OutputArchive archive;
      optimiser.save(archive);
      std::ostringstream bytes;
      archive.save_to(bytes);
      state.optimiser = bytes.str();
      const auto g = generator.get_state().contiguous();
      state.generator.assign(g.data_ptr<std::uint8_t>(), g.data_ptr<std::uint8_t>() + g.numel());
      checkpoint(state);
    }
  }
  backbone.set_training(false);
}

}  // namespace rguard
