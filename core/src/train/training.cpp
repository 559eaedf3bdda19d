// Training a backbone for the smoothed embedding (docs/training.md): class-balanced batches,
// m noisy copies of each image from the noise plugin, the margin loss of each copy's
// embeddings, and the objective's term; Adam, a multistep schedule, a checkpoint per epoch.
#include "rguard/training.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "rguard/adversarial.hpp"
#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/noise.hpp"
#include "rguard/tensors.hpp"
#include "train/checkpoint.hpp"
#include "train/training_losses.hpp"

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
      {.name = "train.objective", .type = ParamType::String, .default_value = "noise",
       .doc = "noise: the margin loss on noisy images (augmentation); consistency: plus weight x the spread of the m "
              "noisy embeddings; certified_margin: plus weight x a hinge on the smoothed pair margins' radius; "
              "smooth_adv: the margin loss on PGD examples of the smoothed embedding for adv_fraction of each batch "
              "(docs/training.md)",
       .choices = "noise|consistency|certified_margin|smooth_adv"},
      {.name = "train.draws", .type = ParamType::Int, .default_value = "1",
       .doc = "noisy copies of each image per step (m; the objectives need m >= 2, m x the cost)", .min = 1, .max = 64},
      {.name = "train.weight", .type = ParamType::Float, .default_value = "1",
       .doc = "lambda: weight of the consistency or certified-margin term", .min = 0},
      {.name = "train.consistency_weight", .type = ParamType::Float, .default_value = "0",
       .doc = "certified_margin or smooth_adv: plus this weight x the consistency term (the spread of the m noisy "
              "embeddings); needs m >= 2",
       .min = 0},
      {.name = "train.target", .type = ParamType::Float, .default_value = "1",
       .doc = "certified_margin: the pair radius over sigma, Phi^-1((1 + margin)/2), below which a pair is penalised",
       .min = 0, .max = 5},
      {.name = "train.hard", .type = ParamType::Int, .default_value = "4",
       .doc = "certified_margin: nearest negatives per anchor", .min = 1},
      {.name = "train.adv_eps", .type = ParamType::Float, .default_value = "0.25",
       .doc = "smooth_adv: l2 budget in [0,1] pixel units", .min = 0, .max = 1000, .min_exclusive = true},
      {.name = "train.adv_steps", .type = ParamType::Int, .default_value = "2", .doc = "smooth_adv: PGD steps",
       .min = 1, .max = 100},
      {.name = "train.adv_fraction", .type = ParamType::Float, .default_value = "0.5",
       .doc = "smooth_adv: share of each batch replaced by its adversarial examples", .min = 0, .max = 1},
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
  const std::string objective = p.get_string("train.objective");
  c.objective = objective == "consistency"        ? TrainObjective::Consistency
                : objective == "certified_margin" ? TrainObjective::CertifiedMargin
                : objective == "smooth_adv"       ? TrainObjective::SmoothAdv
                                                  : TrainObjective::Noise;
  c.draws = p.get_int("train.draws");
  c.weight = p.get_float("train.weight");
  c.consistency_weight = p.get_float("train.consistency_weight");
  c.target = p.get_float("train.target");
  c.hard = p.get_int("train.hard");
  c.adv_eps = p.get_float("train.adv_eps");
  c.adv_steps = p.get_int("train.adv_steps");
  c.adv_fraction = p.get_float("train.adv_fraction");
  if ((c.objective == TrainObjective::Consistency || c.objective == TrainObjective::CertifiedMargin) && c.draws < 2)
    throw Error(fmt::format("train.draws: {} needs at least 2 noisy copies per image (its term compares them); set "
                            "train.draws: 4",
                            objective));
  if (c.consistency_weight > 0 && (c.objective == TrainObjective::Noise || c.objective == TrainObjective::Consistency))
    throw Error(fmt::format("train.consistency_weight: adds the consistency term to certified_margin or smooth_adv; "
                            "with objective {} set train.objective: consistency and its weight with train.weight",
                            objective));
  if (c.consistency_weight > 0 && c.draws < 2)
    throw Error("train.consistency_weight: the consistency term compares the noisy copies of each image; set "
                "train.draws: 2 or more");
  if (c.objective != TrainObjective::Noise && c.noise_sigma <= 0)
    throw Error(fmt::format("train.noise_sigma: {} trains the smoothed embedding, which needs noise; set it (usually "
                            "${{noise.sigma}})",
                            objective));
  return c;
}


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

namespace {

// One step's noisy embeddings: m copies of each image, noise keyed by (step, row, draw).
at::Tensor noisy_embeddings(Backbone& backbone, const at::Tensor& images, const TrainConfig& config, const Noise& noise,
                            std::uint64_t noise_seed, std::int64_t step, std::int64_t first_draw,
                            const torch::Device& device) {
  const std::int64_t b = images.size(0), m = config.draws;
  const auto copies = images.repeat_interleave(m, 0);  // row i * m + j: image i, draw j
  std::vector<std::int64_t> ids(static_cast<std::size_t>(b * m), step), samples;
  for (std::int64_t r = 0; r < b * m; ++r) samples.push_back(first_draw + r);
  const double scale = config.noise_sigma / noise.sigma();
  const auto noisy = config.noise_sigma > 0 ? copies + noise_like(noise, noise_seed, copies, ids, samples, scale) : copies;
  auto embedding = backbone.forward(noisy.to(device));
  check_embedding_shape(embedding, b * m, backbone.embedding_dim(), "the backbone being trained");
  return embedding.view({b, m, -1});
}

// smooth_adv: x' within adv_eps of x maximising the squared distance between the smoothed
// embedding (mean over m noisy copies, fresh noise each PGD step) and the clean one.
at::Tensor smoothed_adversarial(Backbone& backbone, const at::Tensor& images, const TrainConfig& config,
                                const Noise& noise, std::uint64_t noise_seed, std::int64_t step,
                                const torch::Device& device) {
  backbone.set_training(false);  // batch statistics stay those of real batches
  at::Tensor clean;
  {
    torch::NoGradGuard no_grad;
    clean = backbone.forward(images.to(device)).detach();
  }
  PgdSettings settings;
  settings.epsilons = {config.adv_eps};
  settings.steps = config.adv_steps;
  settings.step_fraction = 2.5 / static_cast<double>(config.adv_steps);  // Madry et al.'s 2.5 eps / steps
  settings.seed = Hasher(noise_seed).text("smooth_adv").u64(static_cast<std::uint64_t>(step)).digest();
  const auto ids = torch::arange(images.size(0), torch::kLong);
  std::int64_t evaluation = 1;  // draws 0.. belong to the training step itself
  auto adversarial = pgd_l2(images, ids, settings, [&](const at::Tensor& x) {
    const auto mean = noisy_embeddings(backbone, x, config, noise, noise_seed, step, evaluation++ * x.size(0) * config.draws,
                                       device)
                          .mean(1);
    return (mean - clean).pow(2).sum(1);
  });
  backbone.set_training(true);
  return adversarial.front().detach();
}

}  // namespace

void train_backbone(Backbone& backbone, const ImageSet& train, const TrainConfig& config, const Noise& noise,
                    std::uint64_t seed, const TrainProgress& progress, const TrainCheckpoint* resume,
                    const CheckpointSink& checkpoint) {
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
  const std::uint64_t noise_seed = Hasher(seed).text("training noise").digest();
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
    resume_checkpoint(*resume, optimiser, generator);
  }

  const auto device = backbone.state().empty() ? torch::Device(torch::kCPU) : backbone.state().front().second.device();
  backbone.set_training(true);
  const std::int64_t total = config.epochs * batches_per_epoch * classes_per_batch * per_class;
  std::int64_t seen = first_epoch * batches_per_epoch * classes_per_batch * per_class;
  for (std::int64_t epoch = first_epoch; epoch < config.epochs; ++epoch) {
    for (std::int64_t step = 0; step < batches_per_epoch; ++step) {
      const std::int64_t global_step = epoch * batches_per_epoch + step;  // keys the noise: resume-proof
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
      if (config.objective == TrainObjective::SmoothAdv) {
        // The first adv_fraction of the batch (classes are shuffled) is replaced by its attack.
        const auto attacked = static_cast<std::int64_t>(std::ceil(config.adv_fraction * static_cast<double>(images.size(0))));
        if (attacked > 0) {
          auto head = images.slice(0, 0, attacked);
          images = torch::cat({smoothed_adversarial(backbone, head, config, noise, noise_seed, global_step, device).to(images.device()),
                               images.slice(0, attacked)});
        }
      }
      const auto noisy = noisy_embeddings(backbone, images, config, noise, noise_seed, global_step, 0, device);
      // Stop before a non-finite step spoils the weights: the last checkpoint stays good.
      if (!noisy.isfinite().all().item<bool>())
        throw Error(fmt::format("training diverged in epoch {}, step {}: the backbone returned non-finite embeddings; "
                                "lower backbone.train.lr or check its forward pass (the last epoch's checkpoint is kept)",
                                epoch + 1, step + 1));
      // The margin loss of each draw's embeddings, averaged over the draws.
      auto loss = margin_loss(noisy.select(1, 0), labels, beta, config.margin, generator);
      for (std::int64_t j = 1; j < config.draws; ++j)
        loss = loss + margin_loss(noisy.select(1, j), labels, beta, config.margin, generator);
      loss = loss / static_cast<double>(config.draws);
      if (config.objective == TrainObjective::Consistency) loss = loss + config.weight * consistency_loss(noisy);
      if (config.consistency_weight > 0) loss = loss + config.consistency_weight * consistency_loss(noisy);
      if (config.objective == TrainObjective::CertifiedMargin) {
        const auto clean = backbone.forward(images.to(device));
        loss = loss + config.weight * certified_margin_loss(noisy, clean, labels, config.target, config.hard);
      }
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value))
        throw Error(fmt::format("training diverged in epoch {}, step {}: the loss is {}; lower backbone.train.lr "
                                "or check the backbone's forward pass (the last epoch's checkpoint is kept)",
                                epoch + 1, step + 1, loss_value));
      optimiser.zero_grad();
      loss.backward();
      optimiser.step();
      seen += images.size(0);
      if (progress) progress(seen, total, loss_value);
    }
    // Multistep schedule (the paper: x0.3 after epochs 30, 55, 75) on the backbone's group.
    if (std::find(config.lr_milestones.begin(), config.lr_milestones.end(), epoch + 1) != config.lr_milestones.end()) {
      auto& options = static_cast<torch::optim::AdamOptions&>(optimiser.param_groups()[0].options());
      options.lr(options.lr() * config.lr_gamma);
    }
    if (checkpoint) checkpoint(capture_checkpoint(epoch + 1, beta.item<double>(), optimiser, generator));
  }
  backbone.set_training(false);
}

}  // namespace rguard
