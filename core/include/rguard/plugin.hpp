// The plugin boundary. A plugin is a shared library exporting one `extern "C"` function,
// `rguard_plugin_entry`, that returns a PluginEntry. The loader reads `api_version` and
// `abi_tag` first and refuses a mismatch before touching anything else (ONNX Runtime's
// ORT_API_VERSION idea). Everything after those two fields may change only together with
// kPluginApiVersion.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <vector>

#include "rguard/params.hpp"

namespace rguard {

// Bumped when the plugin contract changes (docs/writing-a-plugin.md, "Plugin API version
// policy"; kPluginApiChanges says what each version changed, for the loader's refusals).
inline constexpr std::uint32_t kPluginApiVersion = 6;

// What changed at each version, indexed by version (the loader quotes it when it refuses).
inline constexpr const char* kPluginApiChanges[] = {
    "",
    "the first published contract",
    "GalleryView gained `unit`; SamplingPlan gained `second_moments` and QueryStats `sum_squares`; ImageSet.images "
    "may be uint8",
    "certifiers declare what they accumulate (rguard/statistics.hpp: selection_statistics, statistics, "
    "statistics_id, certify(QueryInfo, GalleryView, QueryState)), QueryStats is gone; Certificate moved to "
    "rguard/certificate.hpp and gained radius_d, rank_radius and evidence; MetricValue declares measure, k, radius, "
    "attack and model; Metric gained query_columns; ParamType gained Path; rguard::Error's vtable lives in the core",
    "sequential sampling: SamplingPlan gained looks and stopping_id, Certifier gained need_more (rguard/sequential.hpp)",
    "SamplingPlan lost stopping_id: the core replays need_more() on the states it caches at every look, so the "
    "decision is no part of any cache key",
    "plugin kind denoiser (rguard/denoiser.hpp: images -> images in front of a frozen backbone, denoised smoothing); "
    "PluginKind gained Denoiser",
};
static_assert(std::size(kPluginApiChanges) == kPluginApiVersion + 1, "say what the new plugin API version changed");

// Plugins share C++ types with the core, so compiler, standard library ABI and LibTorch
// must match too; the tag makes such a mismatch a clear refusal instead of a crash.
#define RGUARD_STRINGIFY_(x) #x
#define RGUARD_STRINGIFY(x) RGUARD_STRINGIFY_(x)
inline constexpr const char* kPluginAbiTag =
    "gcc" RGUARD_STRINGIFY(__GNUC__) "/cxx11abi" RGUARD_STRINGIFY(_GLIBCXX_USE_CXX11_ABI);

enum class PluginKind : std::uint32_t { Dataset, Backbone, Noise, Attack, Certifier, Metric, Denoiser };
inline constexpr PluginKind kAllPluginKinds[] = {PluginKind::Dataset,   PluginKind::Backbone, PluginKind::Denoiser,
                                                 PluginKind::Noise,     PluginKind::Attack,   PluginKind::Certifier,
                                                 PluginKind::Metric};
const char* to_string(PluginKind kind);
std::optional<PluginKind> parse_plugin_kind(std::string_view text);

// Base of every object a plugin creates. Its destructor is defined in the core, so the
// type information lives there and dynamic_cast works across the library boundary.
class Plugin {
 public:
  virtual ~Plugin();
};

struct PluginEntry {
  std::uint32_t api_version;  // must be the first member
  const char* abi_tag;        // must be the second member
  PluginKind kind;
  const char* name;
  const char* version;
  const char* summary;
  const std::vector<ParamSpec>& (*schema)();
  Plugin* (*create)(const Params& params);  // owned by the caller; throws rguard::Error
};

}  // namespace rguard

// Defines the entry point of a plugin library. CLASS must derive from the interface of
// KIND and have a constructor taking `const rguard::Params&`; SCHEMA is an expression of
// type std::vector<rguard::ParamSpec>.
#define RGUARD_PLUGIN(KIND, NAME, VERSION, SUMMARY, CLASS, SCHEMA)                        \
  namespace {                                                                             \
  const std::vector<rguard::ParamSpec>& rguard_schema_() {                                \
    static const std::vector<rguard::ParamSpec> rguard_schema_value_ = SCHEMA;           \
    return rguard_schema_value_;                                                                     \
  }                                                                                       \
  rguard::Plugin* rguard_create_(const rguard::Params& params) { return new CLASS(params); } \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) const rguard::PluginEntry*            \
  rguard_plugin_entry() {                                                                 \
    static const rguard::PluginEntry entry{rguard::kPluginApiVersion, rguard::kPluginAbiTag, \
                                           KIND, NAME, VERSION, SUMMARY, &rguard_schema_, \
                                           &rguard_create_};                              \
    return &entry;                                                                        \
  }
