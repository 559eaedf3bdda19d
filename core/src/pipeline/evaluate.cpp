// Evaluation: a point's certificates in query order, its attacks and audit, its metrics.
#include <fmt/format.h>

#include <algorithm>

#include "pipeline/run_session.hpp"

namespace rguard::run {

PointResult collect_point(Session& s, Point& p) {
  const auto start = Clock::now();
  const Model& m = *p.model;
  PointResult point;
  point.name = p.spec->point;
  point.gallery = m.embedding_key;
  point.sigma = p.noise->sigma();
  point.alpha = p.certifier->alpha();
  point.n = p.certifier->plan().n;
  point.selection = p.certifier->plan().selection;
  point.certifier_notes = p.certifier->describe();
  struct Row {
    Certificate certificate;
    double seconds;
  };
  std::vector<Row> rows;
  // A query's time is its share of its block's: with sequential sampling, by the samples it
  // drew (selection samples included); with fixed n, an equal share.
  const auto selection = static_cast<double>(p.certifier->plan().selection);
  for (auto& block : p.blocks) {
    double drawn = 0;
    for (const auto m : block.samples) drawn += selection + static_cast<double>(m);
    for (std::size_t i = 0; i < block.rows.size(); ++i) {
      const double seconds = p.certifier->plan().looks.empty() || !(drawn > 0)
                                 ? block.seconds / static_cast<double>(block.rows.size())
                                 : block.seconds * (selection + static_cast<double>(block.samples[i])) / drawn;
      rows.push_back({block.certificates[i], seconds});
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.certificate.query_id < b.certificate.query_id; });
  std::vector<float> query_embedding;
  std::vector<std::int64_t> query_label, query_id;
  for (const auto& row : rows) {
    const auto id = static_cast<std::size_t>(row.certificate.query_id);
    point.certificates.push_back(row.certificate);
    point.query_gallery_index.push_back(p.data->query_gallery_index[id]);
    point.seconds.push_back(row.seconds);
    const auto first = m.query_embedding.begin() + static_cast<std::ptrdiff_t>(id * static_cast<std::size_t>(m.dim));
    query_embedding.insert(query_embedding.end(), first, first + m.dim);
    query_label.push_back(p.data->query_label[id]);
    query_id.push_back(row.certificate.query_id);
  }
  std::vector<double> rhos;
  for (const auto& c : point.certificates) rhos.push_back(c.rho);
  std::sort(rhos.begin(), rhos.end());
  point.rho = rhos.empty() ? 0 : rhos[rhos.size() / 2];
  point.attacks = audit_point(s, p, point);
  EvalView eval;
  eval.gallery = m.gallery();
  eval.queries = {query_embedding.data(), query_label.data(), point.query_gallery_index.data(), query_id.data(),
                  static_cast<std::int64_t>(query_id.size())};
  std::vector<std::int64_t> all_ids(p.data->query_label.size());
  for (std::size_t i = 0; i < all_ids.size(); ++i) all_ids[i] = static_cast<std::int64_t>(i);
  eval.all_queries = {m.query_embedding.data(), p.data->query_label.data(), p.data->query_gallery_index.data(),
                      all_ids.data(), static_cast<std::int64_t>(all_ids.size())};
  eval.certificates = &point.certificates;
  eval.attacks = &point.attacks;
  eval.sigma = point.sigma;
  eval.alpha = point.alpha;
  point.train_seconds = m.train_seconds;
  point.denoiser_train_seconds = m.denoiser_train_seconds;
  for (std::size_t i = 0; i < p.metrics.size(); ++i)
    with_context([&] { return plugin_failure(*p.spec, p.spec->metrics[i], "while computing"); }, [&] {
      for (auto& value : p.metrics[i]->compute(eval)) point.metrics.push_back(std::move(value));
      for (auto& column : p.metrics[i]->query_columns(eval)) {
        if (column.values.size() != point.certificates.size())
          throw Error(fmt::format("query column '{}' has {} values for {} certified queries", column.name,
                                  column.values.size(), point.certificates.size()));
        point.columns.push_back(std::move(column));
      }
    });
  s.report({p.spec->point, "certificates", "computed", seconds_since(start), "",
            fmt::format("{} certificates and {} metric values (no forward pass)", point.certificates.size(),
                        point.metrics.size())});
  return point;
}

}  // namespace rguard::run
