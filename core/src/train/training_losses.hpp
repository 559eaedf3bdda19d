// The losses of backbone training (docs/training.md has the formulas and their sources).
// Every function is differentiable in its embedding arguments; embeddings have unit rows.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace rguard {

// The margin loss with distance-weighted sampling (Wu, Manmatha, Smola, Krahenbuhl,
// "Sampling Matters in Deep Embedding Learning", ICCV 2017): for every positive pair (a, p)
// of the batch and one negative n per pair drawn with weight 1/q(d),
//   [d_ap - beta + margin]_+ + [beta - d_an + margin]_+,
// averaged over the terms that are active. embedding [B, k], labels [B].
at::Tensor margin_loss(const at::Tensor& embedding, const at::Tensor& labels, const at::Tensor& beta, double margin,
                       at::Generator& generator);

// Consistency (after Jeong & Shin, "Consistency Regularization for Certified Robustness of
// Smoothed Classifiers", NeurIPS 2020): the spread of each image's m noisy embeddings around
// their mean, (1/m) sum_j ||f_ij - mean_i||^2 = 1 - ||mean_i||^2 for unit f, averaged over
// the batch. Lower spread is a longer smoothed embedding F, which every certificate rewards.
// noisy [B, m, k].
at::Tensor consistency_loss(const at::Tensor& noisy);

// Certified margin (after MACER, Zhai et al., ICLR 2020, for retrieval pairs): for each
// anchor i with mean noisy embedding m_i, its nearest positive p and `hard` nearest negatives
// n among the other clean embeddings of the batch, the pair's smoothed margin
// z = <m_i, (c_p - c_n)/||c_p - c_n||> gives Theorem B's radius over sigma at rho = 0,
// s = Phi^-1((1 + z)/2); the loss is the mean of [target - s]_+. noisy [B, m, k], clean
// [B, k], labels [B]. Anchors without a positive or a negative in the batch add nothing.
at::Tensor certified_margin_loss(const at::Tensor& noisy, const at::Tensor& clean, const at::Tensor& labels, double target,
                                 std::int64_t hard);

// Denoiser objectives (Salman, Sun, Yang, Kapoor, Kolter, "Denoised Smoothing: A Provable
// Defense for Pretrained Classifiers", NeurIPS 2020; train_denoiser.py's `denoising` and
// `stability`), for a denoiser D trained in front of a frozen base f.
//
// Denoising: the mean squared pixel error (1/(B C H W)) sum ||D(x_i + delta_i) - x_i||^2
// (torch's MSELoss, as there). denoised and clean [B, C, H, W]; no gradient reaches clean.
at::Tensor denoising_loss(const at::Tensor& denoised, const at::Tensor& clean);

// Stability, the retrieval analogue of Salman et al.'s: the mean squared distance of the
// unit embeddings of the denoised noisy images to the clean image's embedding,
// (1/(B m)) sum_ij ||f(D(x_i + delta_ij)) - f(x_i)||^2 = 2 - 2 <f_ij, f(x_i)> on unit rows.
// noisy [B, m, k], clean [B, k] (held fixed: the base's clean embeddings are the target).
at::Tensor stability_loss(const at::Tensor& noisy, const at::Tensor& clean);

}  // namespace rguard
