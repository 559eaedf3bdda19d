// The training objectives (docs/training.md) on hand-made embeddings: values computed by
// hand, and gradients against central finite differences in double precision.
#include "prelude.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>

#include "rguard/normal.hpp"
#include "train/training_losses.hpp"

namespace {

at::Tensor unit(double degrees) {
  const double r = degrees * M_PI / 180.0;
  return torch::tensor({std::cos(r), std::sin(r)}, torch::kDouble);
}

// Autograd's gradient of `loss` at x against (f(x + h e_i) - f(x - h e_i)) / 2h.
void check_gradient(const std::function<at::Tensor(const at::Tensor&)>& loss, at::Tensor x) {
  x = x.clone().set_requires_grad(true);
  const auto value = loss(x);
  const auto grad = torch::autograd::grad({value}, {x})[0];
  const double h = 1e-6;
  auto flat = x.detach().clone().flatten();
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = flat.clone(), minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (loss(plus.view(x.sizes())).item<double>() - loss(minus.view(x.sizes())).item<double>()) / (2 * h);
    INFO("coordinate ", i);
    CHECK(grad.flatten()[i].item<double>() == doctest::Approx(numeric).epsilon(1e-5).scale(1.0));
  }
}

}  // namespace

TEST_CASE("consistency loss: 1 - ||mean of the noisy embeddings||^2, and its gradient") {
  // Image 0: draws at 0 and 90 degrees, mean (1/2, 1/2), spread 1/2; image 1: both at 0, spread 0.
  auto noisy = torch::stack({torch::stack({unit(0), unit(90)}), torch::stack({unit(0), unit(0)})});
  CHECK(rguard::consistency_loss(noisy).item<double>() == doctest::Approx(0.25).epsilon(1e-15));
  // It is the mean spread around the mean: (1/m) sum_j ||f_ij - mean_i||^2.
  const auto mean = noisy.mean(1, true);
  CHECK(rguard::consistency_loss(noisy).item<double>() ==
        doctest::Approx((noisy - mean).pow(2).sum(2).mean().item<double>()).epsilon(1e-15));
  check_gradient([](const at::Tensor& x) { return rguard::consistency_loss(x); },
                 torch::stack({torch::stack({unit(10), unit(70)}), torch::stack({unit(-20), unit(5)})}));
}

TEST_CASE("certified margin loss: the hinge on Phi^-1((1 + pair margin)/2) of the nearest pairs, and its gradient") {
  // Clean: 0 and 1 are class 0 at 0 and 30 degrees, 2 is class 1 at 90 degrees. Anchor 0's
  // draws at +-10 degrees: mean (cos 10, 0); its positive is 1, its negative 2. Anchor 1's
  // draws at 20 and 40: positive 0, negative 2. Anchor 2 has no positive: it adds nothing.
  const auto clean = torch::stack({unit(0), unit(30), unit(90)});
  const auto noisy = torch::stack({torch::stack({unit(10), unit(-10)}), torch::stack({unit(20), unit(40)}),
                                   torch::stack({unit(80), unit(100)})});
  const auto labels = torch::tensor({0, 0, 1}, torch::kLong);
  auto term = [&](int anchor, int positive, int negative, double target) {
    const auto m = noisy[anchor].mean(0);
    const auto w = clean[positive] - clean[negative];
    const double z = (m * w).sum().item<double>() / w.norm().item<double>();  // unit rows: threshold 0
    return std::max(0.0, target - rguard::normal_quantile(0.5 * (1 + z)));
  };
  for (double target : {0.5, 1.0, 2.0}) {
    const double expected = (term(0, 1, 2, target) + term(1, 0, 2, target)) / 2;
    CHECK(rguard::certified_margin_loss(noisy, clean, labels, target, 1).item<double>() ==
          doctest::Approx(expected).epsilon(1e-9));
  }
  // With a target no pair reaches, every term is active: the gradient in the noisy draws.
  check_gradient([&](const at::Tensor& x) { return rguard::certified_margin_loss(x, clean, labels, 3.0, 1); }, noisy);
  // None reaches the clean embeddings: the gallery side is held fixed.
  const auto fixed = clean.clone().set_requires_grad(true);
  CHECK_FALSE(rguard::certified_margin_loss(noisy, fixed, labels, 3.0, 1).requires_grad());
  const auto both = rguard::certified_margin_loss(noisy.clone().set_requires_grad(true), fixed, labels, 3.0, 1);
  CHECK(both.requires_grad());
  CHECK(torch::autograd::grad({both}, {fixed}, {}, {}, false, true)[0].defined() == false);
  // A target every pair exceeds gives 0.
  CHECK(rguard::certified_margin_loss(noisy, clean, labels, 0.0, 1).item<double>() == 0.0);
}

TEST_CASE("margin loss with one negative per anchor: the hinge terms by hand, and the gradient") {
  // Labels 0, 0, 1: the positive pairs (0, 1) and (1, 0); the only negative of each is 2.
  const auto embedding = torch::stack({unit(0), unit(40), unit(100)});
  const auto labels = torch::tensor({0, 0, 1}, torch::kLong);
  const auto beta = torch::full({1}, 1.2, torch::kDouble);
  const double margin = 0.2;
  auto d = [&](int a, int b) { return (embedding[a] - embedding[b]).norm().item<double>(); };
  const double terms[] = {std::max(0.0, d(0, 1) - 1.2 + margin), std::max(0.0, d(1, 0) - 1.2 + margin),
                          std::max(0.0, 1.2 - d(0, 2) + margin), std::max(0.0, 1.2 - d(1, 2) + margin)};
  double sum = 0, active = 0;
  for (double t : terms) {
    sum += t;
    active += t > 0;
  }
  at::Generator generator = at::detail::createCPUGenerator(3);
  CHECK(rguard::margin_loss(embedding, labels, beta, margin, generator).item<double>() ==
        doctest::Approx(sum / std::max(1.0, active)).epsilon(1e-12));
  check_gradient(
      [&](const at::Tensor& x) {
        at::Generator g = at::detail::createCPUGenerator(3);
        return rguard::margin_loss(x, labels, beta, margin, g);
      },
      embedding);
}

TEST_CASE("denoising loss: the mean squared pixel error by hand, its gradient, none into the clean image") {
  // Two 1x1x2 images: errors (0.5, -1) and (0, 2): (0.25 + 1 + 0 + 4) / 4 = 1.3125.
  const auto clean = torch::tensor({0.2, 0.4, 0.6, 0.1}, torch::kDouble).view({2, 1, 1, 2});
  const auto denoised = clean + torch::tensor({0.5, -1.0, 0.0, 2.0}, torch::kDouble).view({2, 1, 1, 2});
  CHECK(rguard::denoising_loss(denoised, clean).item<double>() == doctest::Approx(1.3125).epsilon(1e-15));
  CHECK(rguard::denoising_loss(clean, clean).item<double>() == 0.0);
  check_gradient([&](const at::Tensor& x) { return rguard::denoising_loss(x, clean); }, denoised);
  const auto target = clean.clone().set_requires_grad(true);
  CHECK_FALSE(rguard::denoising_loss(denoised, target).requires_grad());
}

TEST_CASE("stability loss: 2 - 2 cos between each denoised draw and the clean embedding, and its gradient") {
  // Image 0: draws at 0 and 60 degrees from its clean embedding at 0: (0 + (2 - 2 cos 60)) / 2;
  // image 1: draws at 90 and 180 from 90: (0 + 2) / 2. Mean over the four: (0 + 1 + 0 + 2) / 4.
  const auto clean = torch::stack({unit(0), unit(90)});
  const auto noisy = torch::stack({torch::stack({unit(0), unit(60)}), torch::stack({unit(90), unit(180)})});
  CHECK(rguard::stability_loss(noisy, clean).item<double>() == doctest::Approx(0.75).epsilon(1e-14));
  CHECK(rguard::stability_loss(torch::stack({torch::stack({unit(0), unit(0)}), torch::stack({unit(90), unit(90)})}), clean)
            .item<double>() == doctest::Approx(0.0).scale(1.0).epsilon(1e-15));
  check_gradient([&](const at::Tensor& x) { return rguard::stability_loss(x, clean); }, noisy);
  const auto target = clean.clone().set_requires_grad(true);
  CHECK_FALSE(rguard::stability_loss(noisy, target).requires_grad());
}
