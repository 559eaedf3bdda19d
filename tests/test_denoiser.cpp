// Denoised smoothing: the denoiser plugins, denoiser training in front of a frozen backbone
// (resume, the base untouched), the denoiser stage of a run (cache keys, reuse) and its
// errors, and a TorchScript base behind a TorchScript denoiser end to end.
#include "prelude.hpp"

#include "tiny_pipeline.hpp"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "cache/cache.hpp"
#include "cache/cache_admin.hpp"
#include "pipeline/run_session.hpp"
#include "rguard/dataset.hpp"
#include "rguard/denoiser.hpp"
#include "rguard/noise.hpp"
#include "train/denoised_backbone.hpp"
#include "train/denoiser_training.hpp"
#include "train/weights.hpp"

namespace {

const std::string kFixtures = std::string(RGUARD_TEST_SOURCE_DIR) + "/fixtures/";

// A small denoiser for the tiny pipeline's 1x12x12 images.
const std::string kDncnn = "denoiser={plugin: dncnn, depth: 3, features: 4, train: {epochs: 1, batch: 15}}";

NamedTensors copy_of(const NamedTensors& state) {
  NamedTensors out;
  for (const auto& [name, t] : state) out.emplace_back(name, t.detach().clone());
  return out;
}

bool same_tensors(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !torch::equal(a[i].second, b[i].second)) return false;
  return true;
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A denoiser without parameters that passes batches of up to two images (the probe's
// size) through and misbehaves on larger ones: returns NaN, or throws.
class Misbehaving final : public Denoiser {
 public:
  enum class Way { NaN, Throws, AlwaysNaN };
  explicit Misbehaving(Way way) : way_(way) {}
  void init(const ImageShape&, std::uint64_t) override {}
  at::Tensor forward(const at::Tensor& noisy) override {
    if (noisy.size(0) <= 2 && way_ != Way::AlwaysNaN) return noisy.clone();
    if (way_ == Way::Throws) throw std::runtime_error("only small batches");
    return torch::full_like(noisy, std::nan(""));
  }
  void set_training(bool) override {}
  void to(const c10::Device&) override {}
  NamedTensors state() override { return {}; }
  std::vector<at::Tensor> trainable_parameters() override { return {}; }
  const DenoiserTrainConfig& train_config() const override { return config; }
  DenoiserTrainConfig config;

 private:
  Way way_;
};

}  // namespace

TEST_CASE("dncnn: starts as the identity and its oneDNN inference path gives the eager output after weight updates") {
  Workspace ws("dncnn_paths");
  const auto spec = ws.spec({kDncnn});
  auto denoiser = loader().create<Denoiser>(*spec.denoiser);
  denoiser->init({1, 12, 12}, 3);
  denoiser->set_training(false);
  const auto images = torch::rand({9, 1, 12, 12});
  {
    c10::InferenceMode inference;
    CHECK(torch::equal(denoiser->forward(images), images));  // last layer zero: D(x) = x
  }
  {
    torch::NoGradGuard no_grad;  // an in-place update, like an optimiser step or loading weights
    for (auto& p : denoiser->trainable_parameters()) p.add_(torch::rand_like(p) * 0.2 - 0.1);
  }
  const auto eager = denoiser->forward(images).detach();  // autograd on: the modules' path
  at::Tensor fast;
  {
    c10::InferenceMode inference;  // the sampler's path
    fast = denoiser->forward(images).clone();
  }
  CHECK(fast.sizes() == images.sizes());
  CHECK((fast - eager).abs().max().item<double>() < 1e-5);
  CHECK((fast - images).abs().max().item<double>() > 1e-3);  // the packed weights were refreshed
}

TEST_CASE("denoiser training: resumed from an epoch checkpoint it ends with the weights of an uninterrupted run and the base is untouched - every objective") {
  for (const std::string weights : {"mse=1", "stability=1", "certified_margin=1", "mse=1 stability=0.5"}) {
    INFO("objective weights ", weights);
    std::vector<std::string> overrides{kDncnn, "denoiser.train.epochs=3", "denoiser.train.draws=2",
                                       "denoiser.train.mse=0"};
    std::istringstream terms(weights);
    for (std::string term; terms >> term;) overrides.push_back("denoiser.train." + term);
    Workspace ws("denoiser_resume");
    const auto spec = ws.spec(overrides);
    const auto data = loader().create<Dataset>(spec.dataset)->load();
    const auto noise = loader().create<Noise>(spec.noise);
    auto base = loader().create<Backbone>(spec.backbone);
    base->init({1, 12, 12}, 7);
    base->set_training(false);
    const std::string base_hash = hash_weights(*base);
    auto fresh = [&] {
      auto d = loader().create<Denoiser>(*spec.denoiser);
      d->init({1, 12, 12}, 11);
      return d;
    };
    auto full = fresh();
    const auto initial = copy_of(full->state());
    const auto& config = full->train_config();
    std::vector<TrainCheckpoint> checkpoints;
    std::vector<NamedTensors> after_epoch;
    train_denoiser(*full, *base, data.train, config, *noise, 21, {}, nullptr, [&](const TrainCheckpoint& c) {
      checkpoints.push_back(c);
      after_epoch.push_back(copy_of(full->state()));
    });
    REQUIRE(checkpoints.size() == 3);
    CHECK(checkpoints[0].epochs_done == 1);
    CHECK_FALSE(same_tensors(initial, full->state()));  // it trained
    CHECK(hash_weights(*base) == base_hash);            // the base did not
    for (const auto& p : base->trainable_parameters()) CHECK_FALSE(p.grad().defined());
    // "Killed" after epoch 1: a new process restores the weights and the checkpoint.
    auto resumed = fresh();
    {
      torch::NoGradGuard no_grad;
      auto live = resumed->state();
      for (std::size_t i = 0; i < live.size(); ++i) live[i].second.copy_(after_epoch[0][i].second);
    }
    train_denoiser(*resumed, *base, data.train, config, *noise, 21, {}, &checkpoints[0]);
    CHECK(same_tensors(full->state(), resumed->state()));
    CHECK(hash_weights(*base) == base_hash);
  }
}

TEST_CASE("denoiser stage: trained once in front of the cached backbone, reused, keyed by its spec - the backbone's cache entry untouched") {
  Workspace ws("denoiser_stage");
  const auto plain = ws.run();
  CHECK(status_of(plain, "denoiser") == "(absent)");
  std::string backbone_key;
  for (const auto& s : plain.stages)
    if (s.stage == "backbone") backbone_key = s.key;
  const Cache cache((ws.root / "cache").string());
  const std::string base_hash = cache.open(run::kBackboneStage, backbone_key)->attribute_string("/", "weights_hash");

  const auto first = ws.run({kDncnn});
  CHECK(status_of(first, "backbone") == "reused");
  CHECK(status_of(first, "denoiser") == "computed");
  CHECK(status_of(first, "samples") == "computed");  // another model: not the plain run's samples
  const auto again = ws.run({kDncnn});
  CHECK(status_of(again, "denoiser") == "reused");
  CHECK(status_of(again, "samples") == "reused");
  CHECK(again.points.front().certificates.size() == first.points.front().certificates.size());
  const auto other = ws.run({kDncnn, "denoiser.train.lr=0.003"});
  CHECK(status_of(other, "denoiser") == "computed");
  CHECK(status_of(other, "samples") == "computed");
  CHECK(cache.open(run::kBackboneStage, backbone_key)->attribute_string("/", "weights_hash") == base_hash);
  // Another base: the denoiser trains anew (its key holds the base's weights hash).
  const auto rebased = ws.run({kDncnn, "backbone.train.lr=0.002"});
  CHECK(status_of(rebased, "backbone") == "computed");
  CHECK(status_of(rebased, "denoiser") == "computed");
}

TEST_CASE("cache bookkeeping of a denoised run: ls lists its denoiser as used - gc keeps every entry it used - merge copies the denoiser") {
  Workspace ws("denoiser_bookkeeping");
  const auto first = ws.run({kDncnn});
  REQUIRE(status_of(first, "denoiser") == "computed");
  const std::string cache = (ws.root / "cache").string();
  std::set<std::string> used_stages;
  std::size_t unused = 0;
  for (const auto& entry : list_cache(cache)) {
    if (entry.used_by.empty()) {
      ++unused;
      CHECK_MESSAGE(entry.stage.find("checkpoint") != std::string::npos, entry.stage << " " << entry.key << " is unused");
    } else {
      used_stages.insert(entry.stage);
    }
  }
  CHECK(used_stages == std::set<std::string>{"backbone", "denoiser", "embeddings", "samples"});
  const auto gc = collect_garbage(cache, false);
  CHECK(gc.removed.size() == 2 * unused);  // each with its checksum
  for (const auto& removed : gc.removed) CHECK(removed.find("checkpoint") != std::string::npos);
  const auto again = ws.run({kDncnn});
  for (const char* stage : {"backbone", "denoiser", "embeddings", "samples"}) CHECK(status_of(again, stage) == "reused");
  // A shard's cache merged into an empty one brings the denoiser along: nothing is retrained.
  const std::string merged = (ws.root / "merged").string();
  const auto merge = merge_caches({cache}, merged);
  CHECK(merge.copied == static_cast<std::int64_t>(list_cache(cache).size()));
  const auto from_merged = ws.run({kDncnn, "cache=" + merged});
  for (const char* stage : {"backbone", "denoiser", "embeddings", "samples"})
    CHECK(status_of(from_merged, stage) == "reused");
}

TEST_CASE("torchscript denoiser: the committed fixture gives Python's output and certifies end to end behind a torchscript base") {
  Workspace ws("denoiser_torchscript");
  const std::string base = "backbone={plugin: torchscript, file: '" + kFixtures + "tiny_embedder.pt', input_shape: [1, 12, 12]}";
  const std::string denoiser = "denoiser={plugin: torchscript, file: '" + kFixtures + "tiny_denoiser.pt'}";
  const auto spec = ws.spec({base, denoiser});
  auto d = loader().create<Denoiser>(*spec.denoiser);
  d->init({1, 12, 12}, 0);
  // fixed_input() of tests/fixtures/make_torchscript_fixture.py
  const auto input = torch::remainder(torch::arange(3 * 144, torch::kFloat).reshape({3, 1, 12, 12}), 17) / 16.0;
  at::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = d->forward(input).reshape({3, -1});
  }
  std::ifstream expected(kFixtures + "tiny_denoiser_expected.txt");
  std::string line;
  std::getline(expected, line);  // comment
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 144; ++j) {
      double v = 0;
      expected >> v;
      CHECK(out[i][j].item<double>() == doctest::Approx(v).epsilon(1e-5));
    }
  const auto result = run_pipeline(spec, loader(), RunOptions{});
  CHECK(status_of(result, "denoiser") == "computed");
  REQUIRE(result.points.size() == 1);
  CHECK(result.points.front().certificates.size() == 20);
  // Fine-tuning the user's denoiser in front of the frozen user's base works too.
  const auto tuned = ws.run({base, denoiser, "denoiser.train.epochs=1", "denoiser.train.stability=1"});
  CHECK(status_of(tuned, "denoiser") == "computed");
}

TEST_CASE("denoiser errors: the wrong shape, a base without gradients, a missing file, no objective - each names the file or key") {
  Workspace ws("denoiser_errors");
  const std::string message = error_of(
      [&] { ws.run({"denoiser={plugin: torchscript, file: '" + kFixtures + "shrinking_denoiser.pt'}"}); });
  CHECK(message.find("shrinking_denoiser.pt") != std::string::npos);
  CHECK(message.find("[2, 1, 6, 6]") != std::string::npos);
  CHECK(message.find("[2, 1, 12, 12]") != std::string::npos);
  INFO(message);
  CHECK(message.find("denoiser plugin 'torchscript' failed on a probe batch") != std::string::npos);

  const std::string base = "backbone={plugin: torchscript, file: '" + kFixtures + "no_grad_embedder.pt', input_shape: [1, 12, 12]}";
  const std::string no_grad = error_of([&] { ws.run({base, kDncnn, "denoiser.train.stability=1"}); });
  CHECK(no_grad.find("no_grad_embedder.pt") != std::string::npos);
  CHECK(no_grad.find("records no gradient") != std::string::npos);
  CHECK(no_grad.find("train.mse only") != std::string::npos);
  CHECK_NOTHROW(ws.run({base, kDncnn}));  // mse needs no gradient through the base

  const std::string missing = error_of([&] { ws.spec({"denoiser={plugin: torchscript, file: '/nonexistent/d.pt'}"}); });
  const std::string missing_run = missing == "(no error)" ? error_of([&] { ws.run({"denoiser={plugin: torchscript, file: '/nonexistent/d.pt'}"}); }) : missing;
  CHECK(missing_run.find("/nonexistent/d.pt") != std::string::npos);
  CHECK(missing_run.find("denoiser.file") != std::string::npos);

  const std::string nothing = error_of([&] { ws.run({kDncnn, "denoiser.train.mse=0"}); });
  CHECK(nothing.find("every objective weight is 0") != std::string::npos);
}

TEST_CASE("a denoiser that returns NaN or fails on larger batches is refused under its own name - one without parameters is not trained") {
  Workspace ws("denoiser_misbehaving");
  const auto spec = ws.spec();
  auto base = loader().create<Backbone>(spec.backbone);
  base->init({1, 12, 12}, 7);
  base->set_training(false);
  const auto batch = torch::rand({8, 1, 12, 12});
  for (const auto way : {Misbehaving::Way::NaN, Misbehaving::Way::Throws}) {
    auto denoiser = std::make_shared<Misbehaving>(way);
    // The probe batch of two passes; the sampler's batches do not, and the error names the denoiser, not the base.
    CHECK_NOTHROW(check_denoiser_fits(*denoiser, *base, {1, 12, 12}, denoiser->config, "denoiser 'misbehaving'", "base"));
    DenoisedBackbone composed(base, denoiser, "spec.yaml:9:3: point 'main': denoiser plugin 'misbehaving'");
    CHECK(composed.forward(batch.slice(0, 0, 2)).size(0) == 2);
    const std::string message = error_of([&] { composed.forward(batch); });
    INFO(message);
    CHECK(message.rfind("spec.yaml:9:3: point 'main': denoiser plugin 'misbehaving'", 0) == 0);
    CHECK(message.find("[8, 1, 12, 12]") != std::string::npos);
    CHECK(message.find(way == Misbehaving::Way::NaN ? "NaN or infinite pixels" : "only small batches") != std::string::npos);
    CHECK_THROWS_AS(composed.forward(batch), AttributedError);  // not attributed to the base by the stage around it
  }
  Misbehaving still(Misbehaving::Way::NaN);
  still.config.epochs = 2;
  still.config.mse = 1;
  const std::string untrainable = error_of([&] { check_denoiser_fits(still, *base, {1, 12, 12}, still.config, "denoiser 'x.pt'", "base"); });
  CHECK(untrainable.find("denoiser 'x.pt': has no trainable parameters") != std::string::npos);
  CHECK(untrainable.find("train.epochs: 0") != std::string::npos);
  // NaN on the probe batch already: refused before any training or sampling.
  Misbehaving nan(Misbehaving::Way::AlwaysNaN);
  const std::string probe = error_of([&] { check_denoiser_fits(nan, *base, {1, 12, 12}, nan.config, "denoiser 'n.pt'", "base"); });
  CHECK(probe.find("denoiser 'n.pt': returns NaN or infinite pixels") != std::string::npos);
}

TEST_CASE("unet: starts as the identity, keeps the shape of 224x224 images, learns, and refuses sides that are not multiples of 4") {
  Workspace ws("unet");
  const auto spec = ws.spec({"denoiser={plugin: unet, features: 4}"});
  auto denoiser = loader().create<Denoiser>(*spec.denoiser);
  denoiser->init({3, 224, 224}, 5);
  const auto images = torch::rand({2, 3, 224, 224});
  {
    c10::InferenceMode inference;
    CHECK(torch::equal(denoiser->forward(images), images));
  }
  // One gradient step on the denoising loss moves it off the identity and lowers the loss.
  const auto noisy = images + 0.25 * torch::randn_like(images);
  auto loss = [&] { return (denoiser->forward(noisy) - images).pow(2).mean(); };
  torch::optim::Adam optimiser(denoiser->trainable_parameters(), torch::optim::AdamOptions(1e-3));
  const double before = loss().item<double>();
  for (int step = 0; step < 5; ++step) {
    optimiser.zero_grad();
    auto l = loss();
    l.backward();
    optimiser.step();
  }
  CHECK(loss().item<double>() < before);
  CHECK(denoiser->forward(images).sizes() == images.sizes());
  auto odd = loader().create<Denoiser>(*spec.denoiser);
  const std::string message = error_of([&] { odd->init({1, 14, 14}, 5); });
  CHECK(message.find("14x14") != std::string::npos);
  CHECK(message.find("multiples of 4") != std::string::npos);
}
