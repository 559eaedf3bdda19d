// Plugin kind "certifier": decides what is kept of each query's noisy embeddings and turns
// it into certified radii (product.md section 2; rguard/statistics.hpp).
//
// Per query the core draws, from the noise plugin, first `plan().selection` samples (their
// own noise stream) into the parts selection_statistics() declares, then `plan().n`
// samples into the parts statistics() declares given that selection state (e.g. directions
// and levels fixed before the main samples are drawn), and calls certify() with both states.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rguard/certificate.hpp"
#include "rguard/plugin.hpp"
#include "rguard/retrieval.hpp"
#include "rguard/statistics.hpp"

namespace rguard {

class Noise;

// How many noisy samples the core streams per query, and in what batches.
struct SamplingPlan {
  std::int64_t n = 0;          // main samples per query
  std::int64_t selection = 0;  // selection samples per query, drawn before the main ones (0 = none)
  std::int64_t batch = 0;      // noisy images per forward pass (queries are packed when n is small)
  std::int64_t queries = 0;    // how many queries to certify (0 = all eligible)
  // Sequential sampling (Theorem S, rguard/sequential.hpp): the main sample counts at which
  // the core asks need_more(), increasing, the last = n. A query stops at the first look
  // where need_more() says no. Empty: every query draws n (fixed sampling).
  // The core keeps each query's states at every look it reached and replays need_more() on
  // them, so a run with other targets or alpha reuses (and extends) what is cached.
  std::vector<std::int64_t> looks;
};

// One query as a certifier sees it.
struct QueryInfo {
  std::int64_t query_id = 0;
  std::int64_t label = 0;
  std::int64_t gallery_index = -1;  // the query's own gallery row (never retrieved), or -1
};

// A query's accumulated states, laid out as the certifier declared them.
struct QueryState {
  std::int64_t selection_samples = 0, samples = 0;
  const double* selection = nullptr;  // selection_statistics(): null without a selection phase
  const double* main = nullptr;       // statistics()
};

class Certifier : public Plugin {
 public:
  virtual SamplingPlan plan() const = 0;
  virtual double alpha() const = 0;
  // Throws rguard::Error when the noise is not covered by the certifier's theorem.
  virtual void check_noise(const Noise& noise) const = 0;
  // What selection_statistics() and statistics() keep, as statistics_id() of their parts
  // joined by ';' (the same for every query): part of the cache key of the samples, and
  // checked against the parts the certifier builds.
  virtual std::string statistics_id(const GalleryView& gallery) const = 0;
  // What is kept of the selection samples; empty when plan().selection is 0.
  virtual Statistics selection_statistics(const GalleryView& gallery) const;
  // What is kept of the main samples of one query, given its selection state (null
  // without a selection phase). Every query of a point gets parts of the same ids and sizes.
  virtual Statistics statistics(const QueryInfo& query, const GalleryView& gallery,
                                const double* selection) const = 0;
  // certify() and need_more() are called for several queries at once, from several
  // threads: they must not change the certifier.
  // state.samples is the query's main sample count: plan().n, or with sequential sampling
  // the look it stopped at, whose share of alpha the certificate must spend.
  virtual Certificate certify(const QueryInfo& query, const GalleryView& gallery, const QueryState& state,
                              double sigma) const = 0;
  // Sequential sampling: after the look at state.samples (a look of plan().looks before the
  // last), whether the query is to draw on to the next look. A function of its arguments
  // and the certifier's parameters alone: shards and resumes stop each query where a single
  // run would, and the core replays it on cached looks. Default: always (every query draws n).
  virtual bool need_more(const QueryInfo& query, const GalleryView& gallery, const QueryState& state,
                         double sigma) const;
  // How its certificates were made (the bound, how alpha is split between events, ...):
  // written as attributes of the point in certificates.h5.
  virtual std::vector<std::pair<std::string, std::string>> describe() const { return {}; }
};

}  // namespace rguard
