// What a certifier says about one query (product.md section 2): the smoothed 1-NN, the
// radii of each certificate, the chosen Recall@1 radius and the certified Recall@K radii.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace rguard {

struct Certificate {
  std::int64_t query_id = 0, label = 0, n = 0;
  std::int64_t predict_index = -1;  // smoothed 1-NN's gallery row
  std::int64_t predict_label = -1;
  double rho = 0, f_norm = 0, d_pos = 0, d_neg = 0;
  // Each certificate's Recall@1 radius; <= 0 abstains, -inf where it does not apply.
  double radius_a = 0, radius_b = 0, radius_c = 0;
  double radius_d = -std::numeric_limits<double>::infinity();
  double radius = 0;     // the certifier's chosen Recall@1 radius; 0 when abstaining
  bool abstain = true;   // radius <= 0: not certified at any r, r = 0 included
  bool correct = false;  // the smoothed 1-NN (by F-hat) is a positive
  // Certified Recall@K: rank_radius[k - 1] is a radius within which a positive stays among
  // the k nearest gallery items (rank_radius[0] = radius); <= 0 where not certified.
  // Non-decreasing in k. Empty when the certifier certifies Recall@1 only.
  std::vector<double> rank_radius;
  // What an independent check needs to recompute the radii (e.g. the level-set
  // certificate's directions, levels and counts): named arrays, each of the same length
  // for every query of a point, written to certificates.h5 under their names.
  std::vector<std::pair<std::string, std::vector<double>>> evidence;
};

}  // namespace rguard
