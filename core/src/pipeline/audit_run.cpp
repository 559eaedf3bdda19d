// Attacks on the certified queries and the soundness audit of their certificates
// (docs/attacks.md).
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/types.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include "rguard/adversarial.hpp"
#include "attack/attack_io.hpp"
#include "rguard/concentration.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "pipeline/progress.hpp"
#include "rguard/tensors.hpp"
#include "pipeline/run_session.hpp"

namespace rguard::run {

namespace {

// ---- attacks and the soundness audit ------------------------------------------------

// Distances from a re-estimated F-hat to the nearest positive and negative (own row
// excluded), against the gallery renormalised in double as the certifier does.
std::pair<double, double> smoothed_distances(const double* f, const GalleryView& g, std::int64_t label, std::int64_t self) {
  double f2 = 0;
  for (std::int64_t d = 0; d < g.dim; ++d) f2 += f[d] * f[d];
  double pos = INFINITY, neg = INFINITY;
  for (std::int64_t j = 0; j < g.size; ++j) {
    if (j == self) continue;
    double n2 = 0, dot = 0;
    for (std::int64_t d = 0; d < g.dim; ++d) {
      const double e = g.embedding[j * g.dim + d];
      n2 += e * e;
      dot += e * f[d];
    }
    const double distance = std::sqrt(std::max(0.0, f2 - 2.0 * dot / std::sqrt(n2) + 1.0));
    if (g.label[j] == label) pos = std::min(pos, distance);
    else neg = std::min(neg, distance);
  }
  return {pos, neg};
}

std::string attack_key(const Session& s, const Point& p, std::size_t index, const std::vector<std::int64_t>& ids) {
  Hasher h;
  h.text("audit/1").text(p.sample_key).text(p.spec->audit.values().empty() ? "" : [&] {
    std::string text;
    for (const auto& [name, value] : p.spec->audit.values()) text += name + "=" + to_yaml_text(value) + ";";
    return text;
  }());
  // With a cascade, an attack's result depends on the attacks before it.
  const bool cascade = p.spec->audit.get_bool("cascade");
  for (std::size_t i = cascade ? 0 : index; i <= index; ++i) h.text(p.spec->attacks[i].canonical());
  for (auto id : ids) h.u64(static_cast<std::uint64_t>(id));
  h.u64(p.spec->seed).text(s.device.str());
  return h.hex();
}

void store_outcomes(H5File& file, const std::vector<AttackOutcome>& outcomes) {
  for (std::size_t e = 0; e < outcomes.size(); ++e) write_attack_outcome(file, fmt::format("/eps{:03d}", e), outcomes[e]);
  file.set_attribute("/", "count", static_cast<std::int64_t>(outcomes.size()));
}

std::optional<std::vector<AttackOutcome>> load_outcomes(const Session& s, const std::string& key, std::size_t count,
                                                        bool images) {
  auto file = s.cache.open(kAuditStage, key);
  if (!file || file->attribute_int("/", "count") != static_cast<std::int64_t>(count)) return std::nullopt;
  std::vector<AttackOutcome> out;
  for (std::size_t e = 0; e < count; ++e) {
    const std::string g = fmt::format("/eps{:03d}", e);
    if (images && !file->exists(g + "/images")) return std::nullopt;
    out.push_back(read_attack_outcome(*file, g, images));
  }
  return out;
}

// Attacks every certified query of the point with each attack at each eps, re-estimates
// F-hat at the adversarial query with fresh noise, and classifies certified queries whose
// radius exceeds eps as confirmed, inconclusive or violated (docs/attacks.md).
}  // namespace

std::vector<AttackOutcome> audit_point(Session& s, Point& p, const PointResult& point) {
  std::vector<AttackOutcome> all;
  if (p.attacks.empty()) return all;
  const auto start = Clock::now();
  const Model& m = *p.model;
  const auto& audit = p.spec->audit;
  const std::int64_t samples = audit.get_int("samples"), batch_size = audit.get_int("batch");
  const double audit_rho = mcdiarmid_radius(samples, audit.get_float("alpha"));
  const bool cascade = audit.get_bool("cascade"), save_images = audit.get_bool("save_images");
  const ImageShape shape = p.data->shape();
  const std::int64_t pixels = shape.channels * shape.height * shape.width;
  const auto q = point.certificates.size();
  std::vector<std::int64_t> ids;
  for (const auto& c : point.certificates) ids.push_back(c.query_id);
  const auto gallery = m.gallery();
  const auto gallery_tensor =
      torch::from_blob(const_cast<float*>(m.gallery_embedding.data()), {gallery.size, gallery.dim}, torch::kFloat).to(s.device);
  const auto gallery_labels = torch::tensor(p.data->gallery_label, torch::kLong).to(s.device);
  std::map<double, std::vector<std::int8_t>> broken;  // cascade: per eps, per query
  std::int64_t computed = 0;
  std::int64_t total_queries = 0, done_queries = 0;
  for (const auto& attack : p.attacks) total_queries += static_cast<std::int64_t>(q * attack->epsilons().size());
  Progress progress(s.log ? *s.log : std::cerr, "attacks", "attacked queries", total_queries, s.log != nullptr);
  for (std::size_t a = 0; a < p.attacks.size(); ++a) {
    Attack& attack = *p.attacks[a];
    const StageSpec& stage = p.spec->attacks[a];
    std::string name = stage.plugin;
    for (std::size_t b = 0; b < a; ++b)
      if (p.spec->attacks[b].plugin == stage.plugin) name = fmt::format("{}#{}", stage.plugin, a + 1);
    const auto eps = attack.epsilons();
    const std::string key = attack_key(s, p, a, ids);
    p.audit_keys.push_back(key);
    if (auto cached = load_outcomes(s, key, eps.size(), save_images); cached && s.force > 2) {
      // Two identical attacks share a cache entry; each keeps its own name in the outputs.
      for (auto& outcome : *cached) outcome.attack = name;
      for (std::size_t e = 0; e < eps.size(); ++e) {
        auto& flags = broken[eps[e]];
        flags.resize(q, 0);
        for (std::size_t i = 0; i < q; ++i) flags[i] |= !(*cached)[e].smoothed_correct[i];
      }
      all.insert(all.end(), cached->begin(), cached->end());
      continue;
    }
    ++computed;
    std::vector<AttackOutcome> outcomes(eps.size());
    for (std::size_t e = 0; e < eps.size(); ++e) {
      auto& o = outcomes[e];
      o.attack = name;
      o.parameters = stage.canonical();
      o.eps = eps[e];
      o.rho = audit_rho;
      o.alpha = audit.get_float("alpha");
      o.samples = samples;
      o.query_id = ids;
      o.base_correct.assign(q, 0);
      o.smoothed_correct.assign(q, 0);
      o.status.assign(q, static_cast<std::int8_t>(AuditStatus::NotAudited));
      o.perturbation.assign(q, 0.0);
      o.smoothed_margin.assign(q, 0.0);
      if (save_images) {
        o.images.assign(q * static_cast<std::size_t>(pixels), 0.0f);
        o.image_shape = {q, static_cast<std::uint64_t>(shape.channels), static_cast<std::uint64_t>(shape.height),
                         static_cast<std::uint64_t>(shape.width)};
      }
      broken[eps[e]].resize(q, 0);
    }
    for (std::size_t begin = 0; begin < q; begin += static_cast<std::size_t>(batch_size)) {
      const std::size_t end = std::min(q, begin + static_cast<std::size_t>(batch_size));
      std::vector<std::int64_t> batch_ids(ids.begin() + static_cast<std::ptrdiff_t>(begin), ids.begin() + static_cast<std::ptrdiff_t>(end));
      const auto id_tensor = torch::tensor(batch_ids, torch::kLong);
      AttackTask task;
      task.images = as_pixels(p.data->data.query.images.index_select(0, id_tensor)).to(s.device);
      task.labels = p.data->data.query.labels.index_select(0, id_tensor).to(s.device);
      task.gallery_index = p.data->data.query_gallery_index.index_select(0, id_tensor).to(s.device);
      task.query_ids = id_tensor;
      task.gallery = gallery_tensor;
      task.gallery_labels = gallery_labels;
      task.noise = p.noise.get();
      task.seed = derive_seed(p.spec->seed, "attack/" + stage.canonical());
      std::vector<at::Tensor> adversarial;
      {
        std::lock_guard torch(s.torch_lock);
        at::set_num_threads(s.threads);
        adversarial = with_context([&] { return plugin_failure(*p.spec, stage, "while attacking"); },
                                   [&] { return attack.perturb(*m.backbone, task); });
      }
      if (adversarial.size() != eps.size())
        throw Error(fmt::format("attack '{}' returned {} batches for {} eps values", name, adversarial.size(), eps.size()));
      for (std::size_t e = 0; e < eps.size(); ++e) {
        auto& o = outcomes[e];
        auto x = adversarial[e].detach().to(torch::kFloat);
        if (x.sizes() != task.images.sizes())
          throw Error(fmt::format("attack '{}' returned images of shape {}, expected {}", name, fmt::join(x.sizes(), "x"),
                                  fmt::join(task.images.sizes(), "x")));
        auto& flags = broken[eps[e]];
        if (cascade)  // queries an earlier attack broke keep their clean image here and are marked skipped
          for (std::size_t i = begin; i < end; ++i)
            if (flags[i]) x[static_cast<std::int64_t>(i - begin)].copy_(task.images[static_cast<std::int64_t>(i - begin)]);
        const auto norms = (x - task.images).flatten(1).norm(2, 1).to(torch::kCPU).to(torch::kDouble).contiguous();
        const double lo = x.min().item<double>(), hi = x.max().item<double>();
        if (!(lo >= 0.0) || !(hi <= 1.0) || !(norms.max().item<double>() <= eps[e] * (1 + 1e-5) + 1e-6))  // NaN fails
          throw Error(fmt::format("attack '{}' left the eps = {} ball or [0, 1] (largest norm {}, pixels in [{}, {}])", name,
                                  eps[e], norms.max().item<double>(), lo, hi));
        at::Tensor base_margin;
        {
          c10::InferenceMode inference;
          base_margin = retrieval_margin(m.backbone->forward(x), task).to(torch::kCPU).to(torch::kDouble).contiguous();
        }
        const auto cpu = x.to(torch::kCPU).contiguous();
        std::vector<const float*> rows;
        for (std::size_t i = 0; i < end - begin; ++i) rows.push_back(cpu.data_ptr<float>() + static_cast<std::int64_t>(i) * pixels);
        std::vector<double> sums(rows.size() * static_cast<std::size_t>(m.dim));
        {
          std::lock_guard torch(s.torch_lock);
          stream_samples(s, p, rows, batch_ids, 0, samples,
                         derive_seed(p.spec->seed, fmt::format("noise/audit/{}/{}", stage.canonical(), e)),
                         std::vector<Statistics>(rows.size(), {sum_statistic(m.dim)}), sums.data(), nullptr);
        }
        for (std::size_t i = begin; i < end; ++i) {
          const std::size_t local = i - begin;
          std::vector<double> f(static_cast<std::size_t>(m.dim));
          for (std::int64_t d = 0; d < m.dim; ++d)
            f[static_cast<std::size_t>(d)] = sums[local * static_cast<std::size_t>(m.dim) + static_cast<std::size_t>(d)] / static_cast<double>(samples);
          const auto& c = point.certificates[i];
          const auto [pos, neg] = smoothed_distances(f.data(), gallery, c.label, point.query_gallery_index[i]);
          const double margin = neg - pos;
          o.perturbation[i] = norms[static_cast<std::int64_t>(local)].item<double>();
          o.base_correct[i] = base_margin[static_cast<std::int64_t>(local)].item<double>() < 0;
          o.smoothed_correct[i] = margin > 0;
          o.smoothed_margin[i] = margin;
          AuditStatus status = AuditStatus::NotAudited;
          if (cascade && flags[i]) {
            status = AuditStatus::Skipped;
            o.base_correct[i] = o.smoothed_correct[i] = 0;
          } else if (!c.abstain && eps[e] < c.radius) {
            status = margin > 2 * audit_rho    ? AuditStatus::Confirmed
                     : margin < -2 * audit_rho ? AuditStatus::Violation
                                               : AuditStatus::Inconclusive;
          }
          o.status[i] = static_cast<std::int8_t>(status);
          if (save_images)
            std::memcpy(o.images.data() + i * static_cast<std::size_t>(pixels), rows[local], sizeof(float) * static_cast<std::size_t>(pixels));
        }
        for (std::size_t i = begin; i < end; ++i) flags[i] |= !o.smoothed_correct[i];
        done_queries += static_cast<std::int64_t>(end - begin);
        progress.update(done_queries, name);
      }
    }
    s.cache.publish(kAuditStage, key, [&](H5File& file) { store_outcomes(file, outcomes); });
    all.insert(all.end(), outcomes.begin(), outcomes.end());
  }
  progress.finish();
  s.report({p.spec->point, "attacks", computed ? "computed" : "reused", seconds_since(start), "",
            fmt::format("{} attack(s) x eps on {} queries, F-hat re-estimated with {} samples each", p.attacks.size(), q,
                        samples)});
  return all;
}

}  // namespace rguard::run
