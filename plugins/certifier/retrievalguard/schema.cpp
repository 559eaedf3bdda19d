#include "schema.hpp"

namespace rguard::retrievalguard {

std::vector<ParamSpec> schema() {
  return {
      {.name = "n", .type = ParamType::Int, .default_value = "100000", .doc = "Monte-Carlo samples per query", .min = 1},
      {.name = "alpha", .type = ParamType::Float, .default_value = "0.001",
       .doc = "failure probability of each certificate (split between the mean's event and the level sets' when "
              "selection > 0)",
       .min = 0, .max = 1, .min_exclusive = true, .max_exclusive = true},
      {.name = "batch", .type = ParamType::Int, .default_value = "256",
       .doc = "noisy images per forward pass (several queries share one when n is small); "
              "256 suits 28x28 images, 32-128 suit 224x224 (docs/performance.md)", .min = 1},
      {.name = "queries", .type = ParamType::Int, .default_value = "0",
       .doc = "queries to certify, a seeded sample of those with a positive; 0 = all", .min = 0},
      {.name = "radius", .type = ParamType::String, .default_value = "max",
       .doc = "reported radius: max of A, B, C, D (sound: alpha is split between their events), or one of them",
       .choices = "max|a|b|c|d"},
      {.name = "bound", .type = ParamType::String, .default_value = "bernstein",
       .doc = "how far F-hat may be from F: bernstein (variance-adaptive, on ||F-hat - F||), mcdiarmid (worst case), "
              "or directional (empirical Bernstein on each direction the radii use; needs the samples' second moments "
              "and certifies B and C, not A); docs/certificates.md",
       .choices = "bernstein|mcdiarmid|directional"},
      {.name = "selection", .type = ParamType::Int, .default_value = "100",
       .doc = "selection samples per query (Cohen et al.'s n0, own noise stream): they fix p* and certificate D's "
              "levels before the n samples; 0 = no certificate D (and none drawn when radius is a, b or c)",
       .min = 0},
      {.name = "level_statistic", .type = ParamType::String, .default_value = "margin",
       .doc = "certificate D: the level sets of the margin over the nearest negative (one statistic covers every "
              "negative), or of single pairs (the `candidates` most at risk; the others keep R_B); "
              "docs/certificates.md",
       .choices = "margin|pairs"},
      {.name = "pool", .type = ParamType::Int, .default_value = "0",
       .doc = "certificate D on the margin: the negatives most at risk on the selection samples that its max runs "
              "over (the others keep R_B, sound); 0 = every negative",
       .min = 0},
      {.name = "level_every", .type = ParamType::Int, .default_value = "2",
       .doc = "certificate D on the margin: count every m-th main sample (its product with the gallery costs most; all "
              "samples feed the mean); docs/performance.md",
       .min = 1},
      {.name = "candidates", .type = ParamType::Int, .default_value = "32",
       .doc = "certificate D on pairs: the negatives most at risk on the selection samples whose pairs get level "
              "counts (the others keep R_B)",
       .min = 1, .max = 4096},
      {.name = "levels", .type = ParamType::Int, .default_value = "32",
       .doc = "certificate D: levels per statistic (Clopper-Pearson per level, union bound over every level)",
       .min = 1, .max = 4096},
      {.name = "level_placement", .type = ParamType::String, .default_value = "selection",
       .doc = "certificate D on pairs: levels spread over the selection samples' range of each pair's projection, or "
              "a fixed grid on [-1, 1] (docs/certificates.md)",
       .choices = "selection|grid"},
      {.name = "ranks", .type = ParamType::Int, .default_value = "8",
       .doc = "certified Recall@K radii kept per query, K = 1..ranks (from the margin statistics V_K of certificate D, "
              "or the K-th smallest pair radius)",
       .min = 1, .max = 1024},
      {.name = "sampling", .type = ParamType::String, .default_value = "fixed",
       .doc = "fixed: every query draws n samples; sequential: samples come in rounds (looks at first_look, "
              "first_look * growth, ..., n) and a query stops once more cannot change what it certifies at "
              "target_radii, each look spending its share of alpha (Theorem S, docs/certificates.md)",
       .choices = "fixed|sequential"},
      {.name = "target_radii", .type = ParamType::FloatList, .default_value = "[]",
       .doc = "sampling: sequential: the radii the run asks about (those of certified_recall: write "
              "\"${metrics.<i>.radii}\"); a query stops once certified beyond the largest, or when even n samples "
              "could reach no target above those it holds",
       .min = 0},
      {.name = "target_ranks", .type = ParamType::IntList, .default_value = "[]",
       .doc = "sampling: sequential: the K of certified Recall@K the run asks about (certified_recall's: "
              "\"${metrics.<i>.k}\"); [] = every K up to ranks",
       .min = 1},
      {.name = "optimism", .type = ParamType::Float, .default_value = "0.5",
       .doc = "sampling: sequential: how far the stopping rule's projection to n lets the mean and the level "
              "probabilities lean in the query's favour (toward their one-sided bounds at this alpha, by the part "
              "sqrt(1 - m/n) that carries to n samples; the level probabilities' bounds are exact quantiles, so "
              "0.5 projects them at about their median and above 0.5 they lean slightly against the query; "
              "smaller gives up on fewer queries and draws more); never affects validity",
       .min = 0, .max = 1, .min_exclusive = true, .max_exclusive = true},
      {.name = "first_look", .type = ParamType::Int, .default_value = "1000",
       .doc = "sampling: sequential: main samples at the first look", .min = 1},
      {.name = "growth", .type = ParamType::Float, .default_value = "1.5",
       .doc = "sampling: sequential: factor between looks (up to max_step_share; the last is at n)", .min = 1, .min_exclusive = true},
      {.name = "max_step_share", .type = ParamType::Float, .default_value = "0.1",
       .doc = "sampling: sequential: caps the step between looks at a share of n: looks grow by growth until a "
              "step would pass max_step_share * n, then come every max_step_share * n samples (the step into n "
              "can be up to about 1.7 times that; 1: growth alone; at least 0.01: about 100 capped looks at "
              "most); never affects validity",
       .min = 0.01, .max = 1},
      {.name = "alpha_at_n", .type = ParamType::Float, .default_value = "0.3",
       .doc = "sampling: sequential: the share of alpha the look at n spends (the earlier looks share the rest in "
              "proportion to their samples); never affects validity",
       .min = 0, .max = 1, .min_exclusive = true, .max_exclusive = true},
  };
}

}  // namespace rguard::retrievalguard
