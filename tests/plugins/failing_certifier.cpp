// A sequential certifier whose stopping rule throws at its first look: the decisions run in
// parallel over a block's queries, and the failure must still reach the user as one message
// naming the plugin and what it was doing, with no output and the cache intact.
#include <stdexcept>

#include "rguard/certifier.hpp"

namespace {

class FailingCertifier final : public rguard::Certifier {
 public:
  explicit FailingCertifier(const rguard::Params&) {}
  rguard::SamplingPlan plan() const override { return {.n = 300, .selection = 0, .batch = 64, .queries = 20, .looks = {100, 200, 300}}; }
  double alpha() const override { return 0.01; }
  void check_noise(const rguard::Noise&) const override {}
  std::string statistics_id(const rguard::GalleryView& gallery) const override {
    return ";" + rguard::sum_statistic(gallery.dim)->id();
  }
  rguard::Statistics statistics(const rguard::QueryInfo&, const rguard::GalleryView& gallery, const double*) const override {
    return {rguard::sum_statistic(gallery.dim)};
  }
  rguard::Certificate certify(const rguard::QueryInfo&, const rguard::GalleryView&, const rguard::QueryState&,
                              double) const override {
    return {};
  }
  bool need_more(const rguard::QueryInfo&, const rguard::GalleryView&, const rguard::QueryState&, double) const override {
    throw std::runtime_error("failing_certifier: need_more failed on purpose");
  }
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Certifier, "failing_certifier", "0", "fails on purpose in its stopping rule",
              FailingCertifier, std::vector<rguard::ParamSpec>{})
