// gaussian: isotropic N(0, sigma^2 I) in [0,1] pixel space, from counter-based streams.
#include "rguard/noise.hpp"
#include "rguard/philox.hpp"

namespace {

class Gaussian final : public rguard::Noise {
 public:
  explicit Gaussian(const rguard::Params& p) : sigma_(p.get_float("sigma")) {}
  const char* family() const override { return "gaussian"; }
  double sigma() const override { return sigma_; }
  void sample(std::uint64_t seed, std::int64_t query_id, std::int64_t first, std::int64_t count, std::int64_t dim,
              float* out) const override {
    const auto s = static_cast<float>(sigma_);
    for (std::int64_t i = 0; i < count; ++i) {
      float* row = out + i * dim;
      rguard::philox_normal(seed, 0, static_cast<std::uint32_t>(query_id), static_cast<std::uint32_t>(first + i), dim, row);
      for (std::int64_t j = 0; j < dim; ++j) row[j] *= s;
    }
  }

 private:
  double sigma_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Noise, "gaussian", "1.1", "isotropic Gaussian noise N(0, sigma^2 I) in [0,1] pixel space",
              Gaussian,
              (std::vector<rguard::ParamSpec>{{.name = "sigma", .type = rguard::ParamType::Float, .default_value = "0.25",
                                               .doc = "standard deviation in [0,1] pixel units; below 1e-4 float32 "
                                                      "rounds x + noise near 1 in steps (1.2e-7) over 0.1% of sigma, "
                                                      "so the noise is not the Gaussian the theorem assumes; above 100 "
                                                      "it drowns the [0,1] pixels entirely",
                                               .min = 1e-4, .max = 100}}))
