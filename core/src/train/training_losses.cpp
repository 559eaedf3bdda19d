#include "train/training_losses.hpp"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace rguard {

namespace {

// Negatives drawn with weight 1/q(d), q(d) ~ d^(k-2) (1 - d^2/4)^((k-3)/2) the density of
// distances between uniform points on the unit sphere in R^k; distances clipped below at
// 0.5 as in the paper; rows without a usable weight fall back to uniform.
torch::Tensor sample_negatives(const torch::Tensor& distance, const torch::Tensor& negative_mask, std::int64_t dim,
                               at::Generator& generator) {
  auto d = distance.detach().clamp_min(0.5);
  auto log_weight = (2.0 - static_cast<double>(dim)) * d.log() -
                    (static_cast<double>(dim) - 3.0) / 2.0 * (1.0 - 0.25 * d * d).clamp_min(1e-8).log();
  log_weight = log_weight.masked_fill(~negative_mask, -std::numeric_limits<double>::infinity());
  auto row_max = std::get<0>(log_weight.max(1, true)).clamp_min(-1e30);
  auto weight = (log_weight - row_max).exp() * negative_mask.to(torch::kFloat);
  auto usable = weight.sum(1, true) > 0;
  weight = torch::where(usable, weight, negative_mask.to(torch::kFloat));
  return torch::multinomial(weight, 1, true, generator).squeeze(1);
}

}  // namespace

at::Tensor margin_loss(const at::Tensor& embedding, const at::Tensor& labels, const at::Tensor& beta, double margin,
                       at::Generator& generator) {
  const std::int64_t b = embedding.size(0), k = embedding.size(1);
  const auto device = embedding.device();
  auto distance = (2.0 - 2.0 * embedding.matmul(embedding.t())).clamp_min(1e-8).sqrt();
  auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  auto eye = torch::eye(b, torch::TensorOptions().dtype(torch::kBool).device(device));
  auto positive_mask = same & ~eye;
  auto negative_mask = ~same;
  auto pairs = positive_mask.nonzero();  // [P, 2] (anchor, positive)
  auto negatives = sample_negatives(distance.cpu(), negative_mask.cpu(), k, generator).to(device);
  auto anchors = pairs.select(1, 0);
  auto d_ap = distance.index({anchors, pairs.select(1, 1)});
  auto d_an = distance.index({anchors, negatives.index_select(0, anchors)});
  auto beta_d = beta.to(device);
  auto loss_pos = torch::relu(d_ap - beta_d + margin);
  auto loss_neg = torch::relu(beta_d - d_an + margin);
  auto active = ((loss_pos > 0).sum() + (loss_neg > 0).sum()).clamp_min(1).to(embedding.scalar_type());
  return (loss_pos.sum() + loss_neg.sum()) / active;
}

at::Tensor consistency_loss(const at::Tensor& noisy) {
  const auto mean = noisy.mean(1);  // [B, k]
  return (1.0 - mean.pow(2).sum(1)).mean();
}

at::Tensor certified_margin_loss(const at::Tensor& noisy, const at::Tensor& clean_embeddings, const at::Tensor& labels,
                                 double target, std::int64_t hard) {
  // The gallery side is held fixed, as certification holds the clean gallery fixed: with
  // gradients through it, the hinge is met by moving clean embeddings (unconstrained by the
  // margin loss on noisy copies) instead of the smoothed query (docs/training.md).
  const auto clean = clean_embeddings.detach();
  const auto mean = noisy.mean(1);  // [B, k]
  const std::int64_t b = clean.size(0);
  const auto similarity = mean.matmul(clean.t()).detach();  // choices only: no gradient through argmax/top-k
  const auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  const auto eye = torch::eye(b, torch::TensorOptions().dtype(torch::kBool).device(clean.device()));
  const double inf = std::numeric_limits<double>::infinity();
  const auto positive_score = similarity.masked_fill(~same | eye, -inf);
  const auto negative_score = similarity.masked_fill(same, -inf);
  const auto [best_positive, positive] = positive_score.max(1);
  const std::int64_t h = std::min<std::int64_t>(hard, b);
  const auto [hard_score, negatives] = negative_score.topk(h, 1);  // [B, h]
  const auto valid = best_positive.isfinite().unsqueeze(1) & hard_score.isfinite();
  const auto c_p = clean.index_select(0, positive).unsqueeze(1);         // [B, 1, k]
  const auto c_n = clean.index_select(0, negatives.flatten()).view({b, h, -1});  // [B, h, k]
  const auto w = c_p - c_n;
  const auto c = w.norm(2, 2).clamp_min(1e-6);                            // [B, h]
  const auto threshold = (c_p.pow(2).sum(2) - c_n.pow(2).sum(2)) / (2.0 * c);
  const auto z = (mean.unsqueeze(1) * w).sum(2) / c - threshold;         // in [-1, 1] up to rounding
  const double eps = 1e-6;
  const auto s = std::sqrt(2.0) * torch::erfinv(z.clamp(-1.0 + 2 * eps, 1.0 - 2 * eps));  // Phi^-1((1 + z)/2)
  const auto terms = torch::relu(target - s).masked_fill(~valid, 0.0);
  return terms.sum() / valid.sum().clamp_min(1).to(terms.scalar_type());
}

at::Tensor denoising_loss(const at::Tensor& denoised, const at::Tensor& clean) {
  return (denoised - clean.detach()).pow(2).mean();
}

at::Tensor stability_loss(const at::Tensor& noisy, const at::Tensor& clean) {
  return (noisy - clean.detach().unsqueeze(1)).pow(2).sum(2).mean();
}

}  // namespace rguard
