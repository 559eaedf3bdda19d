#include "train/denoiser_training.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/noise.hpp"
#include "rguard/tensors.hpp"
#include "train/checkpoint.hpp"
#include "train/training_losses.hpp"
#include "train/weights.hpp"

namespace rguard {

std::vector<ParamSpec> denoiser_train_param_specs(const char* default_epochs) {
  return {
      {.name = "train.epochs", .type = ParamType::Int, .default_value = default_epochs,
       .doc = "training epochs in front of the frozen backbone; 0 = the denoiser as initialised or loaded", .min = 0},
      {.name = "train.batch", .type = ParamType::Int, .default_value = "64", .doc = "clean images per batch", .min = 2},
      {.name = "train.lr", .type = ParamType::Float, .default_value = "0.001", .doc = "Adam learning rate", .min = 0,
       .min_exclusive = true},
      {.name = "train.noise_sigma", .type = ParamType::Float, .default_value = "0.25",
       .doc = "sigma of the noise it learns to remove, [0,1] pixel units (usually ${noise.sigma})", .min = 0,
       .max = 100, .min_exclusive = true},
      {.name = "train.draws", .type = ParamType::Int, .default_value = "1",
       .doc = "noisy copies of each image per step (m x the cost)", .min = 1, .max = 64},
      {.name = "train.mse", .type = ParamType::Float, .default_value = "1",
       .doc = "weight of the denoising loss: mean of (D(x+d) - x)^2 over pixels", .min = 0},
      {.name = "train.stability", .type = ParamType::Float, .default_value = "0",
       .doc = "weight of the stability loss: mean of ||f(D(x+d)) - f(x)||^2 over the unit embeddings of the frozen "
              "backbone f",
       .min = 0},
      {.name = "train.certified_margin", .type = ParamType::Float, .default_value = "0",
       .doc = "weight of the certified-margin hinge (docs/training.md) on f(D(x+d)) against the clean f(x)", .min = 0},
      {.name = "train.target", .type = ParamType::Float, .default_value = "1",
       .doc = "certified_margin: the pair radius over sigma below which a pair is penalised", .min = 0, .max = 5},
      {.name = "train.hard", .type = ParamType::Int, .default_value = "4",
       .doc = "certified_margin: nearest negatives per anchor", .min = 1},
  };
}

DenoiserTrainConfig parse_denoiser_train_config(const Params& p) {
  DenoiserTrainConfig c;
  c.epochs = p.get_int("train.epochs");
  c.batch = p.get_int("train.batch");
  c.lr = p.get_float("train.lr");
  c.noise_sigma = p.get_float("train.noise_sigma");
  c.draws = p.get_int("train.draws");
  c.mse = p.get_float("train.mse");
  c.stability = p.get_float("train.stability");
  c.certified_margin = p.get_float("train.certified_margin");
  c.target = p.get_float("train.target");
  c.hard = p.get_int("train.hard");
  if (c.epochs > 0 && c.mse + c.stability + c.certified_margin <= 0)
    throw Error("train.mse, train.stability, train.certified_margin: every objective weight is 0, so training "
                "would change nothing; give one a positive weight (e.g. train.mse: 1) or set train.epochs: 0");
  return c;
}

namespace {

bool needs_base_gradient(const DenoiserTrainConfig& c) { return c.stability > 0 || c.certified_margin > 0; }

std::string shape_text(const at::Tensor& t) {
  std::string text = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) text += (d ? ", " : "") + std::to_string(t.size(d));
  return text + "]";
}

// The base's parameters record no gradient while the denoiser trains (restored after).
class FrozenParameters {
 public:
  explicit FrozenParameters(std::vector<at::Tensor> parameters) : parameters_(std::move(parameters)) {
    for (auto& t : parameters_) {
      was_.push_back(t.requires_grad());
      if (t.is_leaf()) t.requires_grad_(false);
    }
  }
  ~FrozenParameters() {
    for (std::size_t i = 0; i < parameters_.size(); ++i)
      if (parameters_[i].is_leaf()) parameters_[i].requires_grad_(was_[i]);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<bool> was_;
};

}  // namespace

void check_denoiser_fits(Denoiser& denoiser, Backbone& base, const ImageShape& input, const DenoiserTrainConfig& config,
                         const std::string& who, const std::string& base_who) {
  const auto device = base.state().empty() ? torch::Device(torch::kCPU) : base.state().front().second.device();
  const auto probe = torch::full({2, input.channels, input.height, input.width}, 0.5).to(device);
  at::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = denoiser.forward(probe);
  }
  if (!out.defined() || !out.sizes().equals(probe.sizes()))
    throw Error(fmt::format("{}: maps a batch of images {} to {}; {} takes the images it was given, so the denoiser "
                            "must return its input's shape (channels x height x width of the dataset's images)",
                            who, shape_text(probe), out.defined() ? shape_text(out) : "nothing", base_who));
  if (out.scalar_type() != probe.scalar_type())
    throw Error(fmt::format("{}: returns {} images for {} ones; a denoiser must return pixels of its input's type", who,
                            c10::toString(out.scalar_type()), c10::toString(probe.scalar_type())));
  if (!out.isfinite().all().item<bool>())
    throw Error(fmt::format("{}: returns NaN or infinite pixels for a batch {} of mid-grey images; a denoiser must "
                            "return finite images",
                            who, shape_text(probe)));
  if (config.epochs > 0) {
    const auto parameters = denoiser.trainable_parameters();
    if (std::none_of(parameters.begin(), parameters.end(), [](const at::Tensor& t) { return t.requires_grad(); }))
      throw Error(fmt::format("{}: has no trainable parameters, so train.epochs: {} has nothing to train; set "
                              "denoiser.train.epochs: 0 to use it as it is",
                              who, config.epochs));
  }
  {
    torch::NoGradGuard no_grad;
    check_embedding_shape(base.forward(out), 2, base.embedding_dim(), base_who + " (behind the denoiser)");
  }
  if (config.epochs == 0 || !needs_base_gradient(config)) return;
  torch::AutoGradMode grad(true);
  base.set_training(false);
  FrozenParameters frozen(base.trainable_parameters());
  const auto x = probe.clone().requires_grad_(true);
  const auto e = base.forward(x);
  if (!e.requires_grad())
    throw Error(fmt::format("{}: its forward pass records no gradient to its input, which denoiser.train.stability "
                            "and denoiser.train.certified_margin back-propagate through (the backbone stays frozen); "
                            "export it without torch.no_grad or freezing, or train the denoiser with train.mse only "
                            "(train.stability: 0, train.certified_margin: 0)",
                            base_who));
}

void train_denoiser(Denoiser& denoiser, Backbone& base, const ImageSet& train, const DenoiserTrainConfig& config,
                    const Noise& noise, std::uint64_t seed, const TrainProgress& progress, const TrainCheckpoint* resume,
                    const CheckpointSink& checkpoint) {
  if (config.epochs == 0) return;
  const std::int64_t n = train.size();
  if (n < 2) throw Error("denoiser training needs a train split with at least 2 images; check the dataset");
  const std::int64_t batch = std::min(config.batch, n), m = config.draws;
  const std::int64_t batches_per_epoch = std::max<std::int64_t>(1, n / batch);
  const auto labels_cpu = train.labels.to(torch::kCPU).contiguous();
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const std::uint64_t noise_seed = Hasher(seed).text("denoiser noise").digest();
  const double scale = config.noise_sigma / noise.sigma();
  torch::optim::Adam optimiser(denoiser.trainable_parameters(), torch::optim::AdamOptions(config.lr));
  std::int64_t first_epoch = 0;
  if (resume) {
    first_epoch = resume->epochs_done;
    resume_checkpoint(*resume, optimiser, generator);
  }
  const auto device = base.state().empty() ? torch::Device(torch::kCPU) : base.state().front().second.device();
  const std::string base_before = hash_weights(base);
  {
    base.set_training(false);
    FrozenParameters frozen(base.trainable_parameters());
    denoiser.set_training(true);
    const std::int64_t total = config.epochs * batches_per_epoch * batch;
    std::int64_t seen = first_epoch * batches_per_epoch * batch;
    for (std::int64_t epoch = first_epoch; epoch < config.epochs; ++epoch) {
      const auto order = torch::randperm(n, generator);
      for (std::int64_t step = 0; step < batches_per_epoch; ++step) {
        const std::int64_t global_step = epoch * batches_per_epoch + step;  // keys the noise: resume-proof
        const auto index = order.slice(0, step * batch, (step + 1) * batch);
        const auto images = as_pixels(train.images.index_select(0, index)).to(device);
        const auto copies = images.repeat_interleave(m, 0);  // row i * m + j: image i, draw j
        std::vector<std::int64_t> ids(static_cast<std::size_t>(batch * m), global_step), samples;
        for (std::int64_t r = 0; r < batch * m; ++r) samples.push_back(r);
        const auto denoised = denoiser.forward(copies + noise_like(noise, noise_seed, copies, ids, samples, scale));
        auto loss = torch::zeros({}, denoised.options());
        if (config.mse > 0) loss = loss + config.mse * denoising_loss(denoised, copies);
        if (needs_base_gradient(config)) {
          at::Tensor clean;
          {
            torch::NoGradGuard no_grad;
            clean = base.forward(images);
          }
          const auto noisy = base.forward(denoised).view({batch, m, -1});
          if (config.stability > 0) loss = loss + config.stability * stability_loss(noisy, clean);
          if (config.certified_margin > 0)
            loss = loss + config.certified_margin *
                              certified_margin_loss(noisy, clean, labels_cpu.index_select(0, index).to(device),
                                                    config.target, config.hard);
        }
        const double value = loss.item<double>();
        if (!std::isfinite(value))
          throw Error(fmt::format("denoiser training diverged in epoch {}, step {}: the loss is {}; lower "
                                  "denoiser.train.lr (the last epoch's checkpoint is kept)",
                                  epoch + 1, step + 1, value));
        optimiser.zero_grad();
        loss.backward();
        optimiser.step();
        seen += batch;
        if (progress) progress(seen, total, value);
      }
      if (checkpoint) checkpoint(capture_checkpoint(epoch + 1, 0, optimiser, generator));
    }
    denoiser.set_training(false);
  }
  if (hash_weights(base) != base_before)
    throw Error("internal: the frozen backbone's weights changed while its denoiser trained; please report this");
}

}  // namespace rguard
