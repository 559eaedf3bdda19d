// Cache keys: each hashes everything upstream of its stage (docs/architecture.md).
#include <fmt/format.h>

#include "rguard/hash.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

// Training draws its noise from the noise plugin scaled to train.noise_sigma: the plugin's
// name and version are part of the key, its sigma is not (a model trained at 0.25 serves
// a point certified at 0.5). The leading tag changes with what training computes
// (backbone/3: the certified-margin term holds the clean embeddings fixed).
std::string backbone_key(const Session& s, const PipelineSpec& spec, const Backbone& backbone, const LoadedData& data) {
  return Hasher().text("backbone/3").text(data.fingerprint).text(spec.backbone.canonical()).text(backbone.fingerprint())
      .text(fmt::format("{}@{}", spec.noise.plugin, spec.noise.entry ? spec.noise.entry->version : "?"))
      .u64(spec.seed).text(s.device.str()).hex();
}

// What a backbone's forward pass computes beyond its state() tensors (whose hash each key
// takes separately): the plugin's name and version (kernels, numerics), every parameter
// but train.* (architecture, input mean/std, output normalisation, inference optimisation;
// train.* only shape the weights) and the content of files the parameters name (a
// TorchScript graph). A parameter a plugin adds later is covered without a change here.
std::string forward_identity(const StageSpec& stage, const std::string& fingerprint) {
  Hasher h;
  h.text("forward/1").text(stage.plugin).text(stage.entry ? stage.entry->version : "?");
  for (const auto& [name, value] : stage.params.values())
    if (name.rfind("train.", 0) != 0) h.text(name).text(to_yaml_text(value));
  return h.text(fingerprint).hex();
}

// A denoiser trained in front of a backbone depends on that backbone's weights (its hash,
// beside the backbone's key), on its own spec (train.* included: they shape its weights), on
// the file it names, the noise family it is trained on, the seed and the device.
std::string denoiser_key(const Session& s, const PipelineSpec& spec, const Model& model, const std::string& base_hash) {
  return Hasher()
      .text("denoiser/1")
      .text(model.key)
      .text(base_hash)
      .text(spec.denoiser->canonical())
      .text(model.denoiser->fingerprint())
      .text(fmt::format("{}@{}", spec.noise.plugin, spec.noise.entry ? spec.noise.entry->version : "?"))
      .u64(spec.seed)
      .text(s.device.str())
      .hex();
}

std::string denoised_forward(const std::string& base_forward, const StageSpec& denoiser, const std::string& fingerprint) {
  return Hasher().text("denoised/1").text(base_forward).text(forward_identity(denoiser, fingerprint)).hex();
}

std::string denoised_weights_hash(const std::string& base_hash, const std::string& denoiser_hash) {
  return Hasher().text("denoised/1").text(base_hash).text(denoiser_hash).hex();
}

std::string embedding_key(const Session& s, const Model& model) {
  return Hasher()
      .text("embeddings/2")
      .text(model.forward)
      .text(model.weights_hash)
      .text(model.data->fingerprint)
      .text(s.device.str())
      .hex();
}

std::string sample_key(const Session& s, const Point& p) {
  Hasher h;
  // What the certifier keeps of the samples is named, not the certifier's parameters:
  // changing alpha or the radius reruns no forward pass.
  h.text("samples/3")
      .text(p.model->forward)
      .text(p.model->weights_hash)
      .text(p.data->fingerprint)
      .text(p.spec->noise.canonical())
      .u64(static_cast<std::uint64_t>(p.certifier->plan().n))
      .u64(static_cast<std::uint64_t>(p.certifier->plan().selection))
      .text(p.statistics_id)
      .u64(p.spec->seed)
      .text(s.device.str());
  // Sequential sampling: where the looks are (fixed keys unchanged). Not what decides at
  // them: the entry keeps every look's states and the rule is replayed (sequential_blocks.cpp),
  // so other target radii or alpha reuse and extend it.
  const SamplingPlan plan = p.certifier->plan();
  if (!plan.looks.empty()) {
    h.text("sequential/3").u64(plan.looks.size());
    for (const auto look : plan.looks) h.u64(static_cast<std::uint64_t>(look));
  }
  return h.hex();
}

}  // namespace rguard::run
