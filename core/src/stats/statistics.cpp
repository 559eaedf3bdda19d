#include "rguard/statistics.hpp"

#include "rguard/certifier.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace rguard {

Statistic::~Statistic() = default;

Statistics Certifier::selection_statistics(const GalleryView&) const { return {}; }
bool Certifier::need_more(const QueryInfo&, const GalleryView&, const QueryState&, double) const { return true; }

void Statistic::init(double* state) const { std::fill(state, state + size(), 0.0); }

std::int64_t state_size(const Statistics& parts) {
  std::int64_t total = 0;
  for (const auto& part : parts) total += part->size();
  return total;
}

std::string statistics_id(const Statistics& parts) {
  std::string id;
  for (const auto& part : parts) id += (id.empty() ? "" : "+") + part->id();
  return id;
}

namespace {

class Sum final : public Statistic {
 public:
  explicit Sum(std::int64_t dim) : dim_(dim) {}
  std::string id() const override { return fmt::format("sum/{}", dim_); }
  std::int64_t size() const override { return dim_; }
  void add(const double* unit, std::int64_t count, double* state) const override {
    for (std::int64_t i = 0; i < count; ++i)
      for (std::int64_t d = 0; d < dim_; ++d) state[d] += unit[i * dim_ + d];
  }

 private:
  std::int64_t dim_;
};

class SecondMoments final : public Statistic {
 public:
  explicit SecondMoments(std::int64_t dim) : dim_(dim) {}
  std::string id() const override { return fmt::format("second_moments/{}", dim_); }
  std::int64_t size() const override { return packed_size(dim_); }
  void add(const double* unit, std::int64_t count, double* state) const override {
    for (std::int64_t i = 0; i < count; ++i) {
      const double* f = unit + i * dim_;
      double* square = state;
      for (std::int64_t a = 0; a < dim_; ++a)
        for (std::int64_t b = a; b < dim_; ++b) *square++ += f[a] * f[b];
    }
  }

 private:
  std::int64_t dim_;
};

class Samples final : public Statistic {
 public:
  Samples(std::int64_t count, std::int64_t dim) : count_(count), dim_(dim) {}
  std::string id() const override { return fmt::format("samples/{}x{}", count_, dim_); }
  std::int64_t size() const override { return 1 + count_ * dim_; }
  void add(const double* unit, std::int64_t count, double* state) const override {
    const auto stored = static_cast<std::int64_t>(state[0]);
    const std::int64_t kept = std::min(count, count_ - stored);
    if (kept <= 0) return;
    std::copy(unit, unit + kept * dim_, state + 1 + stored * dim_);
    state[0] = static_cast<double>(stored + kept);
  }

 private:
  std::int64_t count_, dim_;
};

}  // namespace

std::shared_ptr<const Statistic> samples_statistic(std::int64_t count, std::int64_t dim) {
  return std::make_shared<Samples>(count, dim);
}

std::shared_ptr<const Statistic> sum_statistic(std::int64_t dim) { return std::make_shared<Sum>(dim); }
std::shared_ptr<const Statistic> second_moment_statistic(std::int64_t dim) { return std::make_shared<SecondMoments>(dim); }

std::vector<double> sample_covariance(std::int64_t n, std::int64_t dim, const double* sum, const double* sum_squares) {
  const auto k = static_cast<std::size_t>(dim);
  std::vector<double> c(k * k);
  const double count = static_cast<double>(n);
  std::size_t packed = 0;
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = i; j < k; ++j, ++packed)
      c[i * k + j] = c[j * k + i] = (sum_squares[packed] - sum[i] * sum[j] / count) / (count - 1.0);
  return c;
}

}  // namespace rguard
