// End-to-end runs of a tiny pipeline on the synthetic dataset: outputs, cache hits and
// misses, determinism across threads and batch sizes, errors inside the flow graph, and a
// damaged cache entry.
#include "prelude.hpp"

#include "cache_check.hpp"
#include "tiny_pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "rguard/concentration.hpp"
#include "rguard/hash.hpp"
#include "rguard/training.hpp"
#include "cache/cache.hpp"
#include "cache/cache_admin.hpp"
#include "output/run_folder.hpp"
#include "pipeline/run_session.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include "rguard/certifier.hpp"
#include "rguard/dataset.hpp"
#include "pipeline/executor.hpp"
#include "io/h5io.hpp"
#include "plugin/loader.hpp"
#include "rguard/metric.hpp"
#include "rguard/noise.hpp"
#include "rguard/normal.hpp"
#include "rguard/retrieval.hpp"
#include "rguard/sequential.hpp"
#include "spec/spec.hpp"
#include "rguard/tensors.hpp"

using namespace rguard;
namespace fs = std::filesystem;

namespace {

double metric(const PointResult& point, const std::string& name) {
  for (const auto& m : point.metrics)
    if (m.name == name) return m.value;
  FAIL("no metric " << name);
  return 0;
}

}  // namespace

namespace {

// What a certificate's evidence holds under `name` (F-hat is "mean_embedding").
const std::vector<double>& evidence(const Certificate& c, const std::string& name) {
  for (const auto& [key, values] : c.evidence)
    if (key == name) return values;
  FAIL("no evidence " << name);
  static const std::vector<double> none;
  return none;
}

// Every radius of a certificates.h5 recomputed by tests/independent/recompute_radii.py
// (Python, scipy: written apart from rguard's C++); returns its report.
std::string recomputed_independently(const fs::path& h5) {
  const std::string command = "/usr/bin/python3 " + (fs::path(RGUARD_TEST_SOURCE_DIR) / "independent" / "recompute_radii.py").string() +
                              " " + h5.string() + " 2>&1";
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  const int status = ::pclose(pipe);
  INFO(out);
  CHECK(status == 0);
  return out;
}

}  // namespace

TEST_CASE("a tiny pipeline runs end to end and writes every output") {
  Workspace ws("e2e");
  const auto result = ws.run();
  CHECK(status_of(result, "backbone") == "computed");
  CHECK(status_of(result, "samples") == "computed");
  REQUIRE(result.points.size() == 1);
  const auto& point = result.points[0];
  CHECK(point.certificates.size() == 20);
  // The default bound: variance-adaptive, per query, at half of alpha (the other half is the
  // level sets' of certificate D).
  for (const auto& c : point.certificates) CHECK(c.rho == doctest::Approx(bernstein_radius(300, 0.005, c.f_norm)).epsilon(1e-12));
  for (const char* name : {"recall@1", "recall@5", "smoothed_recall@1", "certified_recall@0", "abstain_rate"}) {
    const double v = metric(point, name);
    CHECK(v >= 0.0);
    CHECK(v <= 1.0);
  }
  CHECK(metric(point, "recall@5") >= metric(point, "recall@1"));
  CHECK(metric(point, "certified_recall@0") >= metric(point, "certified_recall@0.05"));
  CHECK(metric(point, "certified_recall@0") > 0.0);  // the synthetic classes are well separated
  for (std::size_t i = 1; i < point.certificates.size(); ++i)
    CHECK(point.certificates[i - 1].query_id < point.certificates[i].query_id);
  for (const auto& c : point.certificates) {
    CHECK(c.radius == (c.abstain ? 0.0 : std::max({c.radius_a, c.radius_b, c.radius_c, c.radius_d})));
    if (!c.abstain) CHECK(c.correct);
    REQUIRE(c.rank_radius.size() == 8);
    CHECK(c.rank_radius[0] == c.radius);  // certified Recall@1 is the Recall@1 radius
    for (std::size_t k = 1; k < c.rank_radius.size(); ++k) CHECK(c.rank_radius[k] >= c.rank_radius[k - 1]);
  }

  for (const char* name : {"resolved.yaml", "manifest.json", "summary.md", "certificates.csv", "certify-main.tsv",
                           "certificates.h5"})
    CHECK(fs::exists(ws.root / "out" / "tiny" / name));
  const auto csv = ws.file("certificates.csv");
  CHECK(csv.rfind("point,sigma,query_id,label,n,rho,f_norm,d_pos,d_neg,radius_a,radius_b,radius_c,radius_d,radius,abstain,"
                  "correct,predict_index,predict_label,recall_radius@1,",
                  0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 21);
  CHECK(ws.file("certify-main.tsv").rfind("idx\tlabel\tpredict\tradius\tcorrect\ttime\n", 0) == 0);
  CHECK(ws.file("manifest.json").find("\"stages\"") != std::string::npos);

  // certificates.h5 holds what docs/outputs.md promises, and every radius is recomputed from
  // it by an independent implementation.
  H5File h5 = H5File::open_read((ws.root / "out" / "tiny" / "certificates.h5").string());
  std::vector<std::uint64_t> gallery_shape, mean_shape;
  const std::string gallery_group = "/galleries/" + h5.attribute_string("/points/main", "gallery");
  const auto gallery = h5.read<float>(gallery_group + "/embedding", &gallery_shape);
  const auto labels = h5.read<std::int64_t>(gallery_group + "/label");
  CHECK(gallery_shape == std::vector<std::uint64_t>{30, 8});
  const auto mean = h5.read<double>("/points/main/mean_embedding", &mean_shape);
  CHECK(mean_shape == std::vector<std::uint64_t>{20, 8});
  CHECK(h5.attribute_double("/points/main", "sigma") == 0.25);
  CHECK(h5.attribute_int("/points/main", "n") == 300);
  CHECK(h5.attribute_string("/points/main", "alpha_mean_event") == "0.005");
  CHECK(h5.attribute_string("/points/main", "alpha_per_level") == "1.953125e-05");  // 0.005 / (8 ranks x 32 levels)
  CHECK(recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5").find("20 queries") != std::string::npos);

  // The McDiarmid bound on the same samples: no forward pass, one rho for every query,
  // and no certificate it gives is larger than the variance-adaptive one.
  const auto mcdiarmid = ws.run({"certifier.bound=mcdiarmid"});
  CHECK(status_of(mcdiarmid, "samples") == "reused");
  REQUIRE(mcdiarmid.points[0].certificates.size() == point.certificates.size());
  for (std::size_t q = 0; q < point.certificates.size(); ++q) {
    const auto& c = mcdiarmid.points[0].certificates[q];
    CHECK(c.rho == doctest::Approx(mcdiarmid_radius(300, 0.005)));
    CHECK(c.radius_b <= point.certificates[q].radius_b);
  }
}

TEST_CASE("the directional bound: second moments sampled once and cached, the same F-hat, radius A not claimed") {
  Workspace ws("directional");
  const auto plain = ws.run();
  const auto first = ws.run({"certifier.bound=directional"});
  CHECK(status_of(first, "samples") == "computed");  // blocks with second moments have their own key
  const auto& a = plain.points[0];
  const auto& b = first.points[0];
  REQUIRE(b.certificates.size() == a.certificates.size());
  for (std::size_t q = 0; q < a.certificates.size(); ++q)  // the same noise, summed in the same order
    CHECK(evidence(b.certificates[q], "mean_embedding") == evidence(a.certificates[q], "mean_embedding"));
  for (const auto& c : b.certificates) {
    CHECK(c.radius_a == -std::numeric_limits<double>::infinity());
    CHECK(std::isfinite(c.rho));  // the deviation at R_B's binding negative
    CHECK(c.rho > 0);
    CHECK(c.radius == (c.abstain ? 0.0 : std::max(c.radius_b, c.radius_c)));
  }
  // certificates.h5 holds what it takes to recompute them (F-hat and the second moments).
  CHECK(recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5").find("20 queries") != std::string::npos);
  int certified = 0;
  for (const auto& c : b.certificates) certified += c.radius_b > 0;
  CHECK(certified >= 5);  // the comparison is about finite radii, not only abstentions
  const auto csv = ws.file("certificates.csv");
  const auto again = ws.run({"certifier.bound=directional"});
  CHECK(status_of(again, "samples") == "reused");
  CHECK(ws.file("certificates.csv") == csv);
  // Each cached block holds, per query, sum f then sum f f^T packed (the certifier's
  // declared parts): the trace of the latter is n (every f has unit norm).
  int blocks = 0;
  for (const auto& item : fs::directory_iterator(ws.root / "cache" / "samples")) {
    if (item.path().extension() != ".h5") continue;
    H5File h5 = H5File::open_read(item.path().string());
    if (h5.attribute_string("/", "statistics").find("second_moments") == std::string::npos) continue;
    std::vector<std::uint64_t> shape;
    const auto state = h5.read<double>("/state", &shape);
    REQUIRE(shape.size() == 2);
    for (std::uint64_t q = 0; q < shape[0]; ++q) {
      double trace = 0;
      std::size_t packed = q * shape[1] + 8;
      for (std::size_t d = 0; d < 8; packed += 8 - d, ++d) trace += state[packed];
      CHECK(trace == doctest::Approx(300.0).epsilon(1e-12));
    }
    ++blocks;
  }
  CHECK(blocks == 3);
}

TEST_CASE("a rerun reuses every stage and writes the same certificate bytes") {
  Workspace ws("rerun");
  ws.run();
  const auto first_csv = ws.file("certificates.csv");
  const auto first_tsv = ws.file("certify-main.tsv");
  const auto again = ws.run();
  for (const char* stage : {"backbone", "embeddings", "samples"}) CHECK(status_of(again, stage) == "reused");
  CHECK(ws.file("certificates.csv") == first_csv);
  CHECK(ws.file("certify-main.tsv") == first_tsv);
}

TEST_CASE("changing alpha radii or metrics runs no forward pass - changing sigma does") {
  Workspace ws("partial");
  const auto first = ws.run();
  const auto changed = ws.run({"certifier.alpha=0.05", "metrics.1.radii=[0, 0.2]"});
  CHECK(status_of(changed, "samples") == "reused");
  CHECK(status_of(changed, "backbone") == "reused");
  CHECK(changed.points[0].rho < first.points[0].rho);  // larger alpha, smaller rho
  CHECK(metric(changed.points[0], "certified_recall@0.2") >= 0.0);
  const auto sigma = ws.run({"noise.sigma=0.3"});
  CHECK(status_of(sigma, "backbone") == "reused");  // train.noise_sigma is fixed in this spec
  CHECK(status_of(sigma, "samples") == "computed");
  const auto more = ws.run({"certifier.queries=28"});  // the first 20 queries' blocks are kept
  CHECK(status_of(more, "samples") == "resumed");
}

TEST_CASE("certificates agree across thread counts and batch sizes - the noise is identical") {
  // The noise and the order of summation do not depend on threads or batching. LibTorch's
  // kernels may round a forward pass differently for another batch shape or thread count
  // (docs/architecture.md), so F-hat is compared to 1e-6 and radii to 1e-5 (absolute).
  Workspace ws("determinism");
  const auto base = ws.run({"threads=2"});
  std::vector<RunResult> others;
  others.push_back(ws.run({"threads=1", "cache=" + (ws.root / "cache1").string()}));
  others.push_back(ws.run({"certifier.batch=37", "cache=" + (ws.root / "cache2").string()}));
  others.push_back(ws.run({"certifier.batch=1000", "threads=1", "cache=" + (ws.root / "cache3").string()}));
  for (const auto& other : others) {
    CHECK(status_of(other, "samples") == "computed");
    const auto& a = base.points[0];
    const auto& b = other.points[0];
    REQUIRE(a.certificates.size() == b.certificates.size());
    double largest = 0;
    for (std::size_t q = 0; q < a.certificates.size(); ++q)
      for (std::size_t i = 0; i < 8; ++i)
        largest = std::max(largest, std::abs(evidence(a.certificates[q], "mean_embedding")[i] -
                                             evidence(b.certificates[q], "mean_embedding")[i]));
    MESSAGE("largest |F-hat difference|: " << largest);
    CHECK(largest <= 1e-6);
    for (std::size_t i = 0; i < a.certificates.size(); ++i) {
      CHECK(a.certificates[i].query_id == b.certificates[i].query_id);
      CHECK(std::abs(a.certificates[i].radius_b - b.certificates[i].radius_b) <= 1e-5);
      CHECK(a.certificates[i].abstain == b.certificates[i].abstain);
    }
  }
}

namespace {

// The tiny pipeline with another backbone section.
std::string tiny_with_backbone(const std::string& backbone) {
  std::string text = kTiny;
  const std::string from = "backbone:\n  plugin: small_cnn\n  channels: [4]\n  embedding_dim: 8\n  input_mean: 0.5\n  input_std: 0.25\n  train: {epochs: 2, batch: 30, per_class: 10, noise_sigma: 0.25}\n";
  REQUIRE(text.find(from) != std::string::npos);
  return text.replace(text.find(from), from.size(), backbone + "\n");
}

int intact_cache_entries(const fs::path& root) { return static_cast<int>(::intact_cache_entries(root, root / "cache")); }

}  // namespace

TEST_CASE("an error inside the flow graph reaches the caller once and leaves no output") {
  Workspace ws("failure");
  const auto spec = ws.spec({}, tiny_with_backbone("backbone: {plugin: failing_backbone, fail_after: 3}"));
  CHECK_THROWS_WITH_AS(run_pipeline(spec, loader(), RunOptions{}), doctest::Contains("forward failed on purpose"), Error);
  CHECK(!fs::exists(ws.root / "out" / "tiny"));
  intact_cache_entries(ws.root);
}

// The message of the rguard::Error that `run` throws; empty when it throws none.
template <class Run>
std::string error_of(Run&& run) {
  try {
    run();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

TEST_CASE("a backbone that throws or returns NaN or a wrong shape: one clear message, no output, the cache intact") {
  // Forward calls of the tiny pipeline: 1 training step (epochs: 1), 1 for the clean
  // embeddings, then the sampler's; fail_after picks the phase that fails.
  struct Fault {
    const char* fault;
    int fail_after;
    const char* message;
  };
  const Fault faults[] = {
      {"construct", 0, "failed to start: failing_backbone: constructor failed on purpose"},
      {"std", 0, "point 'main': backbone plugin 'failing_backbone' failed while training or loading its weights: "
                 "failing_backbone: std::runtime_error on purpose"},
      {"nan", 0, "training diverged in epoch 1, step 1: the backbone returned non-finite embeddings"},
      {"shape", 0, "the backbone being trained: forward returned Float [30, 9] for 30 images, expected Float [30, 8]"},
      {"nan", 1, "backbone plugin 'failing_backbone' returned a non-finite embedding for clean image 0;"},
      {"dtype", 1, "backbone plugin 'failing_backbone': forward returned Double [30, 8] for 30 images, expected Float [30, 8]"},
      {"zero", 2, "backbone plugin 'failing_backbone' returned a zero embedding for noisy sample 0 of query "},
      {"shape", 2, "forward returned Float [128, 9] for 128 images, expected Float [128, 8]"},
      {"torch", 2, "point 'main': backbone plugin 'failing_backbone' failed while sampling (noise plugin 'gaussian'): "
                   "LibTorch: mat1 and mat2 shapes cannot be multiplied"},
      {"foreign", 2, "failed while sampling (noise plugin 'gaussian'): an exception that is not a std::exception"},
  };
  for (const auto& f : faults) {
    INFO("fault " << f.fault << " after " << f.fail_after << " forward calls");
    Workspace ws(fmt::format("fault_{}_{}", f.fault, f.fail_after));
    const auto text = tiny_with_backbone(fmt::format(
        "backbone: {{plugin: failing_backbone, fault: {}, fail_after: {}, train: {{epochs: 1, batch: 30, per_class: 10}}}}",
        f.fault, f.fail_after));
    const std::string message = error_of([&] { run_pipeline(ws.spec({}, text), loader(), RunOptions{}); });
    INFO(message);
    CHECK(message.find(f.message) != std::string::npos);
    CHECK(message.find("Exception raised from") == std::string::npos);  // no C++ backtrace
    CHECK(!fs::exists(ws.root / "out" / "tiny"));
    const int entries = intact_cache_entries(ws.root);
    // What was finished before the fault stays: the trained weights (and the checkpoint
    // of its epoch) once training is done, the clean embeddings once they are.
    CHECK(entries >= (f.fail_after == 0 ? 0 : f.fail_after == 1 ? 2 : 3));
  }
}

TEST_CASE("a damaged cache entry is set aside and recomputed to the same result") {
  Workspace ws("damaged");
  ws.run();
  const auto first_csv = ws.file("certificates.csv");
  int damaged = 0;
  for (const auto& item : fs::directory_iterator(ws.root / "cache" / "samples")) {
    if (item.path().extension() != ".h5") continue;
    std::ofstream(item.path(), std::ios::binary | std::ios::trunc) << "garbage";
    if (++damaged == 2) break;
  }
  const auto again = ws.run();
  CHECK(status_of(again, "samples") == "resumed");
  CHECK(ws.file("certificates.csv") == first_csv);
  int aside = 0;
  for (const auto& item : fs::directory_iterator(ws.root / "cache" / "samples"))
    aside += item.path().extension() == ".corrupt";
  CHECK(aside == 2);
}

TEST_CASE("a metric that throws: the message names it and every sample stays cached") {
  Workspace ws("failing_metric");
  const std::string message =
      error_of([&] { ws.run({"metrics=[{plugin: certified_recall, radii: [0]}, {plugin: failing_metric}]"}); });
  INFO(message);
  CHECK(message.find("--set: point 'main': metric plugin 'failing_metric' failed while computing: failing_metric: compute failed "
                     "on purpose") != std::string::npos);
  CHECK(!fs::exists(ws.root / "out" / "tiny"));
  CHECK(intact_cache_entries(ws.root) >= 5);
  const auto again = ws.run();
  for (const char* stage : {"backbone", "embeddings", "samples"}) CHECK(status_of(again, stage) == "reused");
}

TEST_CASE("a certifier whose stopping rule throws: the message names it and what it was deciding, no output") {
  Workspace ws("failing_certifier");
  const std::string message = error_of([&] { ws.run({"certifier={plugin: failing_certifier}"}); });
  INFO(message);
  CHECK(message.find("point 'main': certifier plugin 'failing_certifier' failed deciding whether a query draws on: "
                     "failing_certifier: need_more failed on purpose") != std::string::npos);
  CHECK(!fs::exists(ws.root / "out" / "tiny"));
  CHECK(intact_cache_entries(ws.root) >= 2);  // the trained backbone and the clean embeddings
}

TEST_CASE("damaged entries of every stage are set aside and recomputed: flipped byte, truncation, checksum, another entry") {
  Workspace ws("damaged_all");
  ws.run();
  const auto first_csv = ws.file("certificates.csv");
  const auto first_h5 = ws.file("certificates.h5");
  std::vector<fs::path> entries;
  for (const auto& item : fs::recursive_directory_iterator(ws.root / "cache"))
    if (item.path().extension() == ".h5") entries.push_back(item.path());
  std::sort(entries.begin(), entries.end());
  REQUIRE(entries.size() >= 6);  // backbone, checkpoint, embeddings, sample blocks
  auto bytes = [](const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto put = [](const fs::path& path, const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  };
  auto sum_of = [](const fs::path& entry) { return fs::path(entry).replace_extension(".sum"); };
  const std::string other = bytes(entries.back()), other_sum = bytes(sum_of(entries.back()));
  for (std::size_t i = 0; i + 1 < entries.size(); ++i) {
    const fs::path& entry = entries[i];
    std::string content = bytes(entry);
    switch (i % 5) {
      case 0: content[content.size() / 2] ^= 0x20; put(entry, content); break;  // one flipped bit
      case 1: put(entry, content.substr(0, content.size() / 2)); break;          // truncated
      case 2: fs::remove(sum_of(entry)); break;                                   // checksum missing
      case 3: put(sum_of(entry), "0123456789abcdef"); break;                      // checksum wrong
      case 4: put(entry, other); put(sum_of(entry), other_sum); break;            // a valid entry of another key
    }
  }
  const auto again = ws.run();
  CHECK(ws.file("certificates.csv") == first_csv);
  CHECK(ws.file("certificates.h5") == first_h5);
  std::size_t aside = 0;
  for (const auto& item : fs::recursive_directory_iterator(ws.root / "cache")) aside += item.path().extension() == ".corrupt";
  CHECK(aside == entries.size() - 1);
  const auto third = ws.run();  // every stage is whole again
  for (const char* stage : {"backbone", "embeddings", "samples"}) CHECK(status_of(third, stage) == "reused");
}

TEST_CASE("a fashion_mnist run records its dataset entry as used - without a train split it runs and stores none") {
  Workspace ws("fashion_mnist_uses");
  const std::string text = R"(name: fm
dataset: {plugin: fashion_mnist, max_train: 300, max_eval: 200}
backbone: {plugin: small_cnn, channels: [4], embedding_dim: 8, train: {epochs: 1, batch: 30}}
noise: {plugin: gaussian, sigma: 0.25}
certifier: {plugin: retrievalguard, n: 100, alpha: 0.01, batch: 100, queries: 2}
metrics: [{plugin: certified_recall, radii: [0]}]
)";
  const auto first = run_pipeline(ws.spec({}, text), loader(), RunOptions{});
  CHECK(status_of(first, "dataset") == "computed");
  std::size_t datasets = 0;
  for (const auto& entry : list_cache((ws.root / "cache").string()))
    if (entry.stage == "dataset") {
      ++datasets;
      CHECK(entry.used_by == std::vector<std::string>{"fm"});  // cache gc keeps it
    }
  CHECK(datasets == 1);
  // No train split: nothing to train, and the data set is decoded each time, not stored.
  const auto no_train = run_pipeline(ws.spec({"dataset.train_classes=[]", "backbone.train.epochs=0"}, text), loader(), RunOptions{});
  CHECK(status_of(no_train, "dataset") == "loaded");
  CHECK(no_train.points.front().certificates.size() == 2);
}

TEST_CASE("fashion_mnist reads Debian's package: counts per class splits protocols") {
  auto make = [](const std::vector<std::string>& overrides) {
    const std::string text =
        "dataset: {plugin: fashion_mnist}\nbackbone: {plugin: small_cnn}\nnoise: {plugin: gaussian}\n"
        "certifier: {plugin: retrievalguard}\n";
    auto spec = resolve_pipeline_spec(parse_yaml(text, "f.yaml"), "f.yaml", overrides, loader());
    return loader().create<Dataset>(spec.dataset);
  };
  auto data = make({})->load();
  CHECK(data.train.size() == 30000);
  CHECK(data.query.size() == 5000);
  CHECK(data.gallery.images.is_same(data.query.images));  // leave-one-out
  CHECK(torch::equal(data.query_gallery_index, torch::arange(5000)));
  CHECK(torch::equal(torch::bincount(data.query.labels), torch::tensor({0, 0, 0, 0, 0, 1000, 1000, 1000, 1000, 1000})));
  CHECK(torch::equal(torch::bincount(data.train.labels), torch::full({5}, 6000, torch::kLong)));
  CHECK(data.train.images.sizes() == torch::IntArrayRef({30000, 1, 28, 28}));
  CHECK((data.train.images.scalar_type() == torch::kUInt8));  // the file's bytes, a quarter of float's memory
  const auto pixels = as_pixels(data.train.images.slice(0, 0, 1000));
  CHECK((pixels.scalar_type() == torch::kFloat));
  CHECK(pixels.min().item<float>() == 0.0f);
  CHECK(pixels.max().item<float>() == 1.0f);
  CHECK(torch::equal(pixels.mul(255.0f).round().to(torch::kUInt8), data.train.images.slice(0, 0, 1000)));

  data = make({"dataset.protocol=query_gallery", "dataset.gallery_split=train", "dataset.eval_classes=[7]",
               "dataset.train_classes=[]"})->load();
  CHECK(data.train.size() == 0);
  CHECK(data.query.size() == 1000);
  CHECK(data.gallery.size() == 6000);
  CHECK((data.query_gallery_index == -1).all().item<bool>());

  CHECK_THROWS_WITH_AS(make({"dataset.root=/nonexistent"})->load(),
                       doctest::Contains("install the Debian package dataset-fashion-mnist"), Error);
}

TEST_CASE("a sweep shares a backbone across points - adding a point runs only that point - --force") {
  Workspace ws("sweep");
  auto run = [&](const std::vector<std::string>& overrides, const std::string& force = "") {
    std::vector<std::string> all{"output=" + (ws.root / "out").string(), "cache=" + (ws.root / "cache").string()};
    all.insert(all.end(), overrides.begin(), overrides.end());
    const auto spec = resolve_experiment_spec(parse_yaml(kTiny, "tiny.yaml"), "tiny.yaml", all, loader());
    RunOptions options;
    options.force = force;
    return run_experiment(spec, loader(), options);
  };
  auto count = [](const RunResult& r, const std::string& stage, const std::string& status) {
    return std::count_if(r.stages.begin(), r.stages.end(),
                         [&](const StageReport& s) { return s.stage == stage && s.status == status; });
  };
  const auto first = run({"noise.sigma=0.2,0.3"});
  REQUIRE(first.points.size() == 2);
  CHECK(first.points[0].name == "noise.sigma=0.2");
  CHECK(first.points[1].sigma == 0.3);
  CHECK(count(first, "backbone", "computed") == 1);  // train.noise_sigma is fixed: one model
  CHECK(count(first, "samples", "computed") == 2);
  const auto csv = ws.file("certificates.csv");
  CHECK(csv.find("noise.sigma=0.2,0.2,") != std::string::npos);
  CHECK(fs::exists(ws.root / "out" / "tiny" / "certify-noise.sigma=0.3.tsv"));

  const auto more = run({"noise.sigma=0.2,0.3,0.4"});
  CHECK(count(more, "samples", "reused") == 2);
  CHECK(count(more, "samples", "computed") == 1);
  CHECK(more.points[1].certificates.size() == first.points[1].certificates.size());
  for (std::size_t i = 0; i < first.points[1].certificates.size(); ++i)
    CHECK(more.points[1].certificates[i].radius == first.points[1].certificates[i].radius);

  const auto forced = run({"noise.sigma=0.2"}, "samples");
  CHECK(count(forced, "backbone", "reused") == 1);
  CHECK(count(forced, "samples", "computed") == 1);
  CHECK(forced.points[0].certificates[3].radius == first.points[0].certificates[3].radius);  // same noise, same bytes
  const auto retrained = run({"noise.sigma=0.2"}, "backbone");
  CHECK(count(retrained, "backbone", "computed") == 1);
  CHECK(count(retrained, "samples", "computed") == 1);
  CHECK_THROWS_WITH_AS(run({}, "sample"), doctest::Contains("did you mean 'samples'"), Error);
}

// A sigma ablation trains one model per point (and one cross pair): each point's radii must
// be recomputable from certificates.h5 against its own model's gallery.
TEST_CASE("a sweep with a model per point: certificates.h5 keeps each model's gallery and every point recomputes") {
  Workspace ws("sweep_models");
  std::vector<std::string> all{"output=" + (ws.root / "out").string(), "cache=" + (ws.root / "cache").string(),
                               "backbone.train.noise_sigma=${noise.sigma}", "noise.sigma=0.2,0.4"};
  auto spec = resolve_experiment_spec(parse_yaml(kTiny, "tiny.yaml"), "tiny.yaml", all, loader());
  const auto result = run_experiment(spec, loader(), RunOptions{});
  REQUIRE(result.points.size() == 2);
  REQUIRE(result.galleries.size() == 2);
  CHECK(result.points[0].gallery != result.points[1].gallery);
  const fs::path file = ws.root / "out" / "tiny" / "certificates.h5";
  H5File h5 = H5File::open_read(file.string());
  for (const auto& point : result.points) {
    const std::string group = "/galleries/" + h5.attribute_string("/points/" + point.name, "gallery");
    std::vector<std::uint64_t> shape;
    CHECK(h5.read<float>(group + "/embedding", &shape).size() == 30 * 8);
  }
  const std::string report = recomputed_independently(file);
  CHECK(report.find("point noise.sigma=0.2: 20 queries") != std::string::npos);
  CHECK(report.find("point noise.sigma=0.4: 20 queries") != std::string::npos);
}

// n = 1 and alpha = 1e-300: rho is larger than any margin, radii are -inf; the independent
// check must agree (scipy's ppf gives NaN outside [0, 1]). pool = every negative: its
// evidence is all -1 (no pruning) and must be read so.
TEST_CASE("extreme settings recompute independently: n = 1 with alpha = 1e-300 - a pool of every negative") {
  Workspace ws("extreme");
  ws.run({"certifier.n=1", "certifier.alpha=1e-300"});
  CHECK(recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5").find("20 queries") != std::string::npos);
  // kTiny's gallery: 30 images of 3 classes, leave-one-out: 20 negatives per query.
  ws.run({"certifier.pool=20"});
  CHECK(recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5").find("20 queries") != std::string::npos);
}

namespace {
// A process id that no process has now (a child that has exited and been reaped).
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}
}  // namespace

// What a swap stopped between its two renames leaves (file systems without
// RENAME_EXCHANGE): no run folder, the last run moved aside, a staging folder. The next run
// puts the last run back before its work, and removes only what rguard wrote.
TEST_CASE("an interrupted output swap: the next run restores the last run and removes only rguard's leftovers") {
  Workspace ws("swap");
  ws.run();
  const fs::path out = ws.root / "out", run_dir = out / "tiny";
  const std::string before = ws.file("certificates.csv");
  const long pid = dead_pid();
  const fs::path old = run_folder::moved_aside(out, "tiny", pid);
  fs::rename(run_dir, old);
  const fs::path stale = out / fmt::format(".tiny.partial-{}-{}-abcdef", old.filename().string().substr(10, 8), pid);
  const fs::path foreign = out / fmt::format(".tiny.partial-{}-{}-uvwxyz", old.filename().string().substr(10, 8), pid);
  fs::create_directories(stale);
  fs::create_directories(foreign);
  std::ofstream(stale / "certificates.csv") << "half";
  std::ofstream(foreign / "notes.txt") << "not rguard's";

  run_folder::recover(out, "tiny");  // what a run does first, with the run's lock held
  CHECK(fs::exists(run_dir / "manifest.json"));
  CHECK(ws.file("certificates.csv") == before);
  CHECK(!fs::exists(old));
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(foreign / "notes.txt"));  // not what rguard writes there: left alone

  // A folder of the user's under the moved-aside name is never taken for a run.
  fs::create_directories(old);
  std::ofstream(old / "mine.txt") << "x";
  ws.run();
  CHECK(fs::exists(old / "mine.txt"));
  CHECK(ws.file("certificates.csv") == before);
  CHECK(run_folder::not_replaceable(run_dir).empty());
  CHECK(run_folder::not_replaceable(old).find("no manifest.json") != std::string::npos);
}

// ---- attacks and the soundness audit -------------------------------------------------------

#include "rguard/adversarial.hpp"
#include "rguard/backbone.hpp"

TEST_CASE("projection keeps ||delta|| <= eps and pixels in [0 1]") {
  auto x = torch::rand({16, 1, 12, 12});
  const auto ids = torch::arange(16);
  for (double eps : {0.01, 0.3, 3.0, 50.0}) {
    auto delta = project_l2(torch::randn({16, 1, 12, 12}) * 10, x, eps);
    CHECK((delta.flatten(1).norm(2, 1) <= eps * (1 + 1e-6)).all().item<bool>());
    CHECK((x + delta).min().item<float>() >= 0.0f);
    CHECK((x + delta).max().item<float>() <= 1.0f);
    auto start = random_ball_start(x, ids, eps, 7, 1);
    CHECK((start.flatten(1).norm(2, 1) <= eps * (1 + 1e-6)).all().item<bool>());
    CHECK((x + start).min().item<float>() >= 0.0f);
    CHECK((x + start).max().item<float>() <= 1.0f);
  }
  // Inside the box and the ball, projection changes nothing.
  auto small = torch::full({2, 1, 12, 12}, 1e-4);
  auto middle = torch::full({2, 1, 12, 12}, 0.5);
  CHECK(torch::allclose(project_l2(small, middle, 1.0), small, 1e-3, 1e-7));  // up to float rounding of x + delta - x
}

namespace {

// A tiny trained model and its task, from the tiny pipeline's cache.
struct AttackFixture {
  Workspace ws{"attack_fixture"};
  std::shared_ptr<Backbone> model;
  AttackTask task;
  AttackFixture() {
    const auto spec = ws.spec({"certifier.queries=12"});
    run_pipeline(spec, loader(), RunOptions{});
    model = loader().create<Backbone>(spec.backbone);
    auto data = loader().create<Dataset>(spec.dataset)->load();
    model->init({1, 12, 12}, derive_seed(spec.seed, "backbone/init"));
    const auto noise = loader().create<Noise>(spec.noise);
    train_backbone(*model, data.train, model->train_config(), *noise, derive_seed(spec.seed, "backbone/train"), {});
    model->set_training(false);
    torch::NoGradGuard no_grad;
    task.images = data.query.images.slice(0, 0, 12);
    task.labels = data.query.labels.slice(0, 0, 12);
    task.gallery_index = torch::arange(12);
    task.query_ids = torch::arange(12);
    task.gallery = model->forward(data.gallery.images);
    task.gallery_labels = data.gallery.labels;
  }
  double mean_margin(const at::Tensor& x) {
    torch::NoGradGuard no_grad;
    return retrieval_margin(model->forward(x), task).mean().item<double>();
  }
};

}  // namespace

TEST_CASE("pgd_l2: the attack objective increases with steps and is deterministic given a seed") {
  AttackFixture f;
  auto objective = [&](const at::Tensor& x) { return retrieval_margin(f.model->forward(x), f.task); };
  PgdSettings settings;
  settings.epsilons = {0.5};
  settings.seed = 3;
  settings.random_start = false;
  settings.steps = 1;
  const double one = f.mean_margin(pgd_l2(f.task.images, f.task.query_ids, settings, objective)[0]);
  settings.steps = 10;
  const auto ten_steps = pgd_l2(f.task.images, f.task.query_ids, settings, objective)[0];
  const double ten = f.mean_margin(ten_steps);
  const double clean = f.mean_margin(f.task.images);
  INFO("clean " << clean << ", 1 step " << one << ", 10 steps " << ten);
  CHECK(clean < one);
  CHECK(one < ten);
  settings.random_start = true;
  const auto a = pgd_l2(f.task.images, f.task.query_ids, settings, objective)[0];
  const auto b = pgd_l2(f.task.images, f.task.query_ids, settings, objective)[0];
  CHECK(torch::equal(a, b));
  settings.seed = 4;
  CHECK(!torch::equal(a, pgd_l2(f.task.images, f.task.query_ids, settings, objective)[0]));
}

TEST_CASE("attacks in a pipeline: a large-eps pgd_l2 breaks an undefended model and the audit finds no violation") {
  Workspace ws("attacks");
  const std::string attacks =
      "attacks:\n"
      "  - {plugin: pgd_l2, eps: [0.02, 2.0], steps: 10}\n"
      "  - {plugin: smooth_pgd, eps: [0.02], steps: 3, m: 4}\n"
      "  - {plugin: embedding_shift, eps: [0.02], steps: 5}\n"
      "  - {plugin: gaussian_noise, eps: [0.02, 2.0]}\n"
      "audit: {samples: 3000, alpha: 0.01}\n";
  // The attacks go before kTiny's metrics list, which the two audit metrics extend.
  std::string spec_text = kTiny;
  spec_text.insert(spec_text.find("metrics:"), attacks);
  spec_text += "  - {plugin: empirical_robust_recall}\n  - {plugin: soundness}\n";
  auto run = [&](const std::vector<std::string>& overrides) {
    std::vector<std::string> all{"output=" + (ws.root / "out").string(), "cache=" + (ws.root / "cache").string(),
                                 "certifier.n=3000"};
    all.insert(all.end(), overrides.begin(), overrides.end());
    return run_pipeline(resolve_pipeline_spec(parse_yaml(spec_text, "tiny.yaml"), "tiny.yaml", all, loader()), loader(),
                        RunOptions{});
  };
  // Undefended: trained without noise.
  const auto undefended = run({"backbone.train.noise_sigma=0"});
  const auto& point = undefended.points[0];
  CHECK(metric(point, "recall@1") >= 0.8);
  CHECK(metric(point, "robust_recall/pgd_l2/2/base") <= 0.2);
  CHECK(metric(point, "robust_recall/pgd_l2/2/base") <= metric(point, "robust_recall/gaussian_noise/2/base"));
  // Certificate D alone faces the four attacks: every query certified by it is audited.
  const auto defended = run({"certifier.radius=d"});
  CHECK(!defended.soundness_failed);
  const auto& p = defended.points[0];
  int by_d = 0;
  for (const auto& c : p.certificates) by_d += !c.abstain && c.radius == c.radius_d && c.radius_d > 0;
  CHECK(by_d > 0);
  CHECK(metric(p, "soundness/audited") > 0);
  CHECK(metric(p, "soundness/violations") == 0);
  CHECK(metric(p, "soundness/confirmed") > 0);
  const auto attacks_csv = ws.file("attacks.csv");
  CHECK(attacks_csv.rfind("point,attack,eps,query_id,certified_radius,perturbation,base_correct,smoothed_correct", 0) == 0);
  // Deterministic: the same run again from an empty cache gives the same per-query results.
  run({"certifier.radius=d", "cache=" + (ws.root / "cache2").string()});
  CHECK(ws.file("attacks.csv") == attacks_csv);
  // The directional bound's certificates face the same attacks and audit.
  const auto directional = run({"certifier.bound=directional"});
  CHECK(!directional.soundness_failed);
  CHECK(metric(directional.points[0], "soundness/audited") > 0);
  CHECK(metric(directional.points[0], "soundness/violations") == 0);
  // Sequential certificates (each at its stopping look's alpha) face the same attacks and audit.
  const auto sequential = run({"certifier.sampling=sequential", "certifier.first_look=200", "certifier.target_radii=[0, 0.02]"});
  CHECK(!sequential.soundness_failed);
  std::int64_t early = 0;
  for (const auto& c : sequential.points[0].certificates) early += c.n < 3000;
  CHECK(early > 0);
  CHECK(metric(sequential.points[0], "soundness/audited") > 0);
  CHECK(metric(sequential.points[0], "soundness/violations") == 0);
}

TEST_CASE("map_at_r and r_precision on a hand-made case (pytorch-metric-learning definitions)") {
  // Unit vectors at angles (degrees) with labels; queries at 0 (label 0), 45 (lone label 2), 36 (label 1).
  auto unit = [](double degrees) {
    const double r = degrees * M_PI / 180.0;
    return std::vector<float>{static_cast<float>(std::cos(r)), static_cast<float>(std::sin(r))};
  };
  std::vector<float> gallery, queries;
  for (double a : {10.0, 20.0, 30.0, 40.0, 90.0}) for (float v : unit(a)) gallery.push_back(v);
  for (double a : {0.0, 45.0, 36.0}) for (float v : unit(a)) queries.push_back(v);
  const std::vector<std::int64_t> gallery_label{0, 1, 0, 0, 1}, query_label{0, 2, 1}, self{-1, -1, -1}, ids{0, 1, 2};
  EvalView eval;
  eval.gallery = {gallery.data(), gallery_label.data(), 5, 2};
  eval.queries = {queries.data(), query_label.data(), self.data(), ids.data(), 3};
  eval.all_queries = eval.queries;
  StageSpec stage;
  stage.kind = PluginKind::Metric;
  stage.plugin = "map_at_r";
  stage.section = "metrics[0]";
  stage.params.set("queries", std::string("certified"));
  const auto values = loader().create<Metric>(stage)->compute(eval);
  REQUIRE(values.size() == 2);
  // Query 0: R = 3, ranks hit, miss, hit: MAP@R = (1 + 2/3)/3, RP = 2/3. Query 36: R = 2,
  // ranks miss, miss: 0 and 0. The lone query is excluded.
  CHECK(values[0].name == "map@r");
  CHECK(values[0].value == doctest::Approx((1.0 + 2.0 / 3.0) / 3.0 / 2.0));
  CHECK(values[1].name == "r_precision");
  CHECK(values[1].value == doctest::Approx(1.0 / 3.0));
}

TEST_CASE("torchscript backbone: the committed fixture gives Python's embeddings and its file is in the cache key") {
  const std::string fixture = std::string(RGUARD_TEST_SOURCE_DIR) + "/fixtures/tiny_embedder.pt";
  auto make = [](const std::string& file) {
    const std::string text = "dataset: {plugin: synthetic}\nnoise: {plugin: gaussian}\ncertifier: {plugin: retrievalguard}\n"
                             "backbone: {plugin: torchscript, file: '" + file + "', input_shape: [1, 12, 12]}\n";
    return resolve_pipeline_spec(parse_yaml(text, "t.yaml"), "t.yaml", {}, loader());
  };
  auto model = loader().create<Backbone>(make(fixture).backbone);
  model->init({1, 12, 12}, 0);
  CHECK(model->embedding_dim() == 8);
  // fixed_input() of tests/fixtures/make_torchscript_fixture.py
  const auto input = torch::remainder(torch::arange(3 * 144, torch::kFloat).reshape({3, 1, 12, 12}), 17) / 16.0;
  at::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = model->forward(input);
  }
  std::ifstream expected(std::string(RGUARD_TEST_SOURCE_DIR) + "/fixtures/tiny_embedder_expected.txt");
  std::string line;
  std::getline(expected, line);  // comment
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 8; ++j) {
      double v = 0;
      expected >> v;
      CHECK(out[i][j].item<double>() == doctest::Approx(v).epsilon(1e-5));
    }
  // Another file with the same parameters is another cache entry.
  Workspace ws("torchscript");
  const fs::path copy = ws.root / "model.pt";
  fs::copy_file(fixture, copy);
  auto run = [&] {
    auto spec = make(copy.string());
    spec.output_root = (ws.root / "out").string();
    spec.cache_root = (ws.root / "cache").string();
    spec.certifier = resolve_pipeline_spec(parse_yaml(kTiny, "t.yaml"), "t.yaml", {}, loader()).certifier;
    return run_pipeline(spec, loader(), RunOptions{});
  };
  CHECK(status_of(run(), "backbone") == "computed");
  CHECK(status_of(run(), "backbone") == "reused");
  std::ofstream(copy, std::ios::app) << " ";  // same model, different bytes
  CHECK(status_of(run(), "backbone") == "computed");
}

namespace {
// A value of the parameter's type other than `value`.
ParamValue another_value(const ParamValue& value) {
  return std::visit(
      [](const auto& v) -> ParamValue {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) return !v;
        else if constexpr (std::is_same_v<T, std::string>) return v + "x";
        else if constexpr (std::is_arithmetic_v<T>) return static_cast<T>(v + 1);
        else {
          T other = v;
          other.push_back(other.empty() ? 1 : other.back() + 1);
          return other;
        }
      },
      value);
}
ParamValue value_of_type(ParamType type) {
  switch (type) {
    case ParamType::Bool: return false;
    case ParamType::Int: return std::int64_t{3};
    case ParamType::Float: return 0.5;
    case ParamType::IntList: return std::vector<std::int64_t>{1, 12, 12};
    case ParamType::FloatList: return std::vector<double>{0.5};
    case ParamType::String:
    case ParamType::Path: return std::string("a");
  }
  return false;
}
}  // namespace

// The keys of the clean embeddings and the samples hash the weights and forward_identity():
// a change of any parameter of any backbone plugin (train.* aside: they only shape the
// weights) or of a file it names must change that identity. The schema is enumerated, so a
// parameter a plugin adds later is covered too.
TEST_CASE("a run folder gets the permissions of the umask like any folder the user makes") {
  Workspace ws("run_folder_mode");
  for (const mode_t mask : {mode_t{022}, mode_t{027}}) {
    const mode_t before = ::umask(mask);  // this test's own process (ctest runs each case alone)
    ws.run();
    ::umask(before);
    const auto perms = fs::status(ws.root / "out" / "tiny").permissions();
    CHECK(static_cast<unsigned>(perms & fs::perms::all) == (0777u & ~static_cast<unsigned>(mask)));
  }
}

TEST_CASE("a cache entry whose writer fails leaves nothing behind and its error carries no LibTorch backtrace") {
  Workspace ws("cache_writer_fails");
  const Cache cache((ws.root / "cache").string());
  const std::string message = [&] {
    try {
      cache.publish("dataset", "0123456789abcdef0123456789abcdef", [](H5File&) {
        throw std::runtime_error("Expected a proper Tensor\nException raised from checked_cast at x.cpp:53\nframe #0: f()");
      });
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  }();
  INFO(message);
  CHECK(message.find("could not store this cache entry (Expected a proper Tensor)") != std::string::npos);
  CHECK(message.find("frame #0") == std::string::npos);
  CHECK(message.find("If the disk is full") != std::string::npos);
  for (const auto& item : fs::recursive_directory_iterator(ws.root / "cache")) CHECK_MESSAGE(!item.is_regular_file(), item.path());
}

TEST_CASE("cache keys: every backbone parameter but train.* changes the forward identity, and so the stage keys") {
  const auto names = loader().names(PluginKind::Backbone);
  REQUIRE(names.size() >= 3);
  int checked = 0;
  for (const auto& name : names) {
    StageSpec stage;
    stage.kind = PluginKind::Backbone;
    stage.plugin = name;
    stage.entry = loader().find(PluginKind::Backbone, name);
    REQUIRE(stage.entry != nullptr);
    for (const ParamSpec& spec : stage.entry->schema()) stage.params.set(spec.name, value_of_type(spec.type));
    const std::string base = run::forward_identity(stage, "file-hash");
    CHECK(run::forward_identity(stage, "other-file-hash") != base);
    for (const ParamSpec& spec : stage.entry->schema()) {
      StageSpec changed = stage;
      changed.params.set(spec.name, another_value(stage.params.values().at(spec.name)));
      const bool train = std::string_view(spec.name).rfind("train.", 0) == 0;
      INFO("backbone ", name, ", parameter ", spec.name);
      CHECK((run::forward_identity(changed, "file-hash") != base) == !train);
      checked += !train;
    }
  }
  CHECK(checked >= 10);
}

namespace {
StageSpec resnet_stage(std::int64_t depth, std::int64_t dim, const std::string& weights = "") {
  const std::string text = fmt::format(
      "dataset: {{plugin: synthetic}}\nnoise: {{plugin: gaussian}}\ncertifier: {{plugin: retrievalguard}}\n"
      "backbone: {{plugin: resnet, depth: {}, embedding_dim: {}, weights: '{}'}}\n",
      depth, dim, weights);
  return resolve_pipeline_spec(parse_yaml(text, "r.yaml"), "r.yaml", {}, loader()).backbone;
}
std::int64_t parameter_count(Backbone& model) {
  std::int64_t n = 0;
  for (const auto& [name, t] : model.state())
    if (name.find("running_") == std::string::npos && name.find("num_batches") == std::string::npos) n += t.numel();
  return n;
}
}  // namespace

TEST_CASE("resnet18 and resnet50 have torchvision's parameter counts with a 1000-way head") {
  for (auto [depth, expected] : {std::pair<std::int64_t, std::int64_t>{18, 11689512}, {50, 25557032}}) {
    auto model = loader().create<Backbone>(resnet_stage(depth, 1000));
    model->init({3, 64, 64}, 0);
    CHECK(parameter_count(*model) == expected);
    CHECK(model->embedding_dim() == 1000);
  }
}

TEST_CASE("resnet18 loads a scripted torchvision resnet18 and computes the same embeddings") {
  Workspace ws("resnet");
  const std::string model = (ws.root / "resnet18.pt").string(), expected = (ws.root / "expected.txt").string();
  const std::string command = fmt::format("/usr/bin/python3 '{}/fixtures/make_torchvision_resnet.py' 18 16 '{}' '{}'",
                                          RGUARD_TEST_SOURCE_DIR, model, expected);
  REQUIRE(std::system(command.c_str()) == 0);
  auto resnet = loader().create<Backbone>(resnet_stage(18, 16, model));
  resnet->init({3, 64, 64}, 0);
  const auto x = torch::remainder(torch::arange(2 * 3 * 64 * 64, torch::kFloat).reshape({2, 3, 64, 64}), 23) / 22.0;
  at::Tensor out;
  {
    torch::NoGradGuard no_grad;
    out = resnet->forward(x);
  }
  std::ifstream in(expected);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 16; ++j) {
      double v = 0;
      in >> v;
      CHECK(out[i][j].item<double>() == doctest::Approx(v).epsilon(1e-4).scale(1e-4));
    }
  // A file of another architecture is refused by name.
  auto other = loader().create<Backbone>(resnet_stage(50, 16, model));
  CHECK_THROWS_WITH_AS(other->init({3, 64, 64}, 0), doctest::Contains("is it a torchvision resnet50"), Error);
}

TEST_CASE("training augmentation: random resized crop and flip keep shape and range and follow the seed") {
  auto images = torch::rand({6, 3, 20, 24});
  at::Generator g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  const auto a = random_resized_crop_flip(images, g1);
  const auto b = random_resized_crop_flip(images, g2);
  CHECK(a.sizes() == images.sizes());
  CHECK(a.min().item<float>() >= 0.0f);
  CHECK(a.max().item<float>() <= 1.0f);
  CHECK(torch::equal(a, b));
  CHECK(!torch::allclose(a, images));
  // A constant image stays constant whatever the crop.
  const auto flat = torch::full({2, 1, 8, 8}, 0.25);
  CHECK(torch::allclose(random_resized_crop_flip(flat, g1), flat));
}

TEST_CASE("training resumed from an epoch checkpoint ends with the weights of an uninterrupted run - every objective") {
  for (const std::string objective : {"noise", "consistency", "certified_margin", "smooth_adv", "certified_margin+"}) {
    INFO("objective ", objective);
    // "certified_margin+": with the consistency term added.
    const bool combined = objective.back() == '+';
    const auto spec = resolve_pipeline_spec(
        parse_yaml(kTiny, "tiny.yaml"), "tiny.yaml",
        {"backbone.train.epochs=3", "backbone.train.augment=crop_flip", "backbone.train.lr_milestones=[2]",
         "backbone.train.objective=" + (combined ? objective.substr(0, objective.size() - 1) : objective),
         std::string("backbone.train.draws=") + (objective == "noise" ? "1" : "2"), "backbone.train.adv_steps=1",
         std::string("backbone.train.consistency_weight=") + (combined ? "0.5" : "0")},
        loader());
    const auto data = loader().create<Dataset>(spec.dataset)->load();
    const auto noise = loader().create<Noise>(spec.noise);
    auto fresh = [&] {
      auto model = loader().create<Backbone>(spec.backbone);
      model->init({1, 12, 12}, 11);
      return model;
    };
    auto full = fresh();
    std::vector<TrainCheckpoint> checkpoints;
    std::vector<NamedTensors> weights;
    train_backbone(*full, data.train, full->train_config(), *noise, 21, {}, nullptr, [&](const TrainCheckpoint& c) {
      checkpoints.push_back(c);
      NamedTensors copy;
      for (const auto& [name, t] : full->state()) copy.emplace_back(name, t.detach().clone());
      weights.push_back(copy);
    });
    REQUIRE(checkpoints.size() == 3);
    CHECK(checkpoints[0].epochs_done == 1);
    // "Killed" after epoch 1: a new process restores the weights and the checkpoint.
    auto resumed = fresh();
    {
      torch::NoGradGuard no_grad;
      auto live = resumed->state();
      for (std::size_t i = 0; i < live.size(); ++i) live[i].second.copy_(weights[0][i].second);
    }
    train_backbone(*resumed, data.train, resumed->train_config(), *noise, 21, {}, &checkpoints[0]);
    const auto a = full->state(), b = resumed->state();
    bool same = true;
    for (std::size_t i = 0; i < a.size(); ++i) same = same && torch::equal(a[i].second, b[i].second);
    CHECK(same);
  }
}

TEST_CASE("small_cnn: the oneDNN inference path gives the eager embeddings and follows weight updates") {
  const std::string text =
      "dataset: {plugin: synthetic}\nnoise: {plugin: gaussian}\ncertifier: {plugin: retrievalguard}\n"
      "backbone: {plugin: small_cnn, channels: [16, 32], embedding_dim: 24}\n";
  auto model = loader().create<Backbone>(resolve_pipeline_spec(parse_yaml(text, "s.yaml"), "s.yaml", {}, loader()).backbone);
  model->init({1, 28, 28}, 3);
  model->set_training(false);
  const auto images = torch::rand({37, 1, 28, 28}, torch::TensorOptions().dtype(torch::kFloat));
  auto compare = [&] {
    const auto eager = model->forward(images).detach();  // autograd on: the modules' path
    at::Tensor fast;
    {
      c10::InferenceMode inference;  // the sampler's path
      fast = model->forward(images).clone();
    }
    CHECK(fast.sizes() == eager.sizes());
    CHECK((fast - eager).abs().max().item<double>() < 1e-5);
    return fast;
  };
  const auto before = compare();
  {
    torch::NoGradGuard no_grad;  // an in-place update, like an optimizer step or loading weights
    for (auto& p : model->trainable_parameters()) p.mul_(0.5).add_(0.01);
  }
  const auto after = compare();
  CHECK((after - before).abs().max().item<double>() > 1e-3);  // the packed weights were refreshed
}

TEST_CASE("nearest_gallery_rows: exact ties go to the lower row and the query's own row is skipped") {
  // Basis vectors with duplicates: every key is exact in float (0, 1 or -1 products).
  const std::vector<float> gallery{1, 0, 0, /*1*/ 0, 1, 0, /*2*/ 1, 0, 0, /*3*/ 0, 0, 1, /*4*/ 1, 0, 0, /*5*/ 0, 1, 0};
  const std::vector<std::int64_t> labels{0, 1, 0, 2, 0, 1};
  const std::vector<float> query{1, 0, 0, 0, 1, 0};
  const std::vector<std::int64_t> query_labels{0, 1}, self{2, -1}, ids{0, 1};
  const GalleryView g{gallery.data(), labels.data(), 6, 3};
  const QueryView q{query.data(), query_labels.data(), self.data(), ids.data(), 2};
  const auto nn = nearest_gallery_rows(q, g, 6);
  CHECK(std::vector<std::int64_t>(nn.begin(), nn.begin() + 6) == std::vector<std::int64_t>{0, 4, 1, 3, 5, -1});
  CHECK(std::vector<std::int64_t>(nn.begin() + 6, nn.end()) == std::vector<std::int64_t>{1, 5, 0, 2, 3, 4});
}

TEST_CASE("nearest_gallery_rows: blocked search equals brute force in double over several blocks") {
  const std::int64_t size = 20000, dim = 16, queries = 1900, k = 10;  // 838 queries per block: 3 blocks
  torch::manual_seed(4);
  const auto raw = torch::randn({size, dim});
  const auto e = (raw / raw.norm(2, 1, true)).contiguous();
  const auto qe = e.slice(0, 0, queries).contiguous();
  std::vector<std::int64_t> labels(static_cast<std::size_t>(size), 0), self(static_cast<std::size_t>(queries)),
      ids(static_cast<std::size_t>(queries));
  for (std::int64_t i = 0; i < queries; ++i) self[static_cast<std::size_t>(i)] = ids[static_cast<std::size_t>(i)] = i;
  const GalleryView g{e.data_ptr<float>(), labels.data(), size, dim};
  const QueryView q{qe.data_ptr<float>(), labels.data(), self.data(), ids.data(), queries};
  const auto nn = nearest_gallery_rows(q, g, k);
  const auto d2 = torch::cdist(qe.to(torch::kDouble), e.to(torch::kDouble)).pow(2);
  for (std::int64_t i = 0; i < queries; i += 37) {
    auto row = d2[i].clone();
    row[i] = std::numeric_limits<double>::infinity();
    const auto expected = std::get<0>(row.topk(k, 0, /*largest=*/false));
    for (std::int64_t j = 0; j < k; ++j) {
      const auto found = nn[static_cast<std::size_t>(i * k + j)];
      REQUIRE(found >= 0);
      CHECK(found != i);
      CHECK(d2[i][found].item<double>() == doctest::Approx(expected[j].item<double>()).epsilon(1e-5).scale(1e-5));
    }
  }
}

TEST_CASE("certified Recall@K on a hand-built gallery: the k-th smallest pair radius and infinity past the negatives") {
  // p* at 0 degrees (label 0), four negatives at 30, 50, 70 and 120 degrees; F-hat = 0.9 at
  // 5 degrees from n = 10,000 samples; radius B only (no selection samples).
  Workspace ws("recall_at_k");
  const auto spec = ws.spec({"certifier.radius=b", "certifier.ranks=6", "certifier.n=10000", "certifier.alpha=0.001"});
  const auto certifier = loader().create<Certifier>(spec.certifier);
  auto at = [](double degrees) {
    const double r = degrees * M_PI / 180.0;
    return std::pair{std::cos(r), std::sin(r)};
  };
  std::vector<float> gallery;
  for (double a : {0.0, 30.0, 50.0, 70.0, 120.0}) {
    gallery.push_back(static_cast<float>(at(a).first));
    gallery.push_back(static_cast<float>(at(a).second));
  }
  const std::vector<std::int64_t> labels{0, 1, 1, 1, 1};
  const auto unit = unit_rows(gallery.data(), 5, 2);
  const GalleryView view{gallery.data(), labels.data(), 5, 2, unit.data()};
  const double sigma = 0.25, n = 10000;
  const std::vector<double> sum{0.9 * at(5).first * n, 0.9 * at(5).second * n};
  const QueryInfo query{0, 0, -1};
  CHECK(certifier->statistics_id(view) == ";sum/2");  // radius b: no selection samples, only the sum
  const Certificate c = certifier->certify(query, view, QueryState{0, 10000, nullptr, sum.data()}, sigma);
  // Independently: R_B of each pair = sigma Phi^-1(1/2 + (<F-hat, u_n> - rho)/2).
  const double rho = bernstein_radius(10000, 0.001, 0.9);
  std::vector<double> pairs;
  for (std::size_t j = 1; j < 5; ++j) {
    const double ux = unit[0] - unit[2 * j], uy = unit[1] - unit[2 * j + 1], c_n = std::hypot(ux, uy);
    const double projection = (sum[0] * ux + sum[1] * uy) / n / c_n;
    pairs.push_back(sigma * normal_quantile(0.5 + 0.5 * (projection - rho)));
  }
  std::sort(pairs.begin(), pairs.end());
  REQUIRE(c.rank_radius.size() == 6);
  CHECK(c.correct);
  CHECK(c.radius == doctest::Approx(pairs[0]).epsilon(1e-12));
  CHECK(c.rank_radius[0] == c.radius);  // Recall@1's radius
  for (std::size_t k = 1; k < 4; ++k) CHECK(c.rank_radius[k] == doctest::Approx(pairs[k]).epsilon(1e-12));
  // Five or more nearest always hold a positive: only four negatives exist.
  CHECK(std::isinf(c.rank_radius[4]));
  CHECK(std::isinf(c.rank_radius[5]));
}

TEST_CASE("sequential sampling: queries stop at looks with their look's alpha - a rerun reuses them byte for byte - threads and batches stop alike") {
  Workspace ws("sequential");
  const std::vector<std::string> sequential{"certifier.n=3200", "certifier.sampling=sequential", "certifier.first_look=100",
                                            "certifier.growth=2", "certifier.target_radii=[0, 0.05]"};
  const auto run = ws.run(sequential);
  // The default step cap, max_step_share 0.1: every 320 samples once growth 2 would step further.
  const auto schedule = geometric_schedule(100, 2.0, 3200, 0.01, 0.3, 320);
  REQUIRE(schedule.sizes ==
          std::vector<std::int64_t>{100, 200, 400, 720, 1040, 1360, 1680, 2000, 2320, 2640, 2960, 3200});
  const auto& point = run.points[0];
  REQUIRE(point.certificates.size() == 20);
  std::int64_t drawn = 0, early = 0;
  for (const auto& c : point.certificates) {
    const int look = schedule.look_at(c.n);
    REQUIRE(look >= 0);  // every query stopped at a look
    drawn += c.n;
    early += c.n < 3200;
    // Its rho spends the look's share of alpha (half of it: the mean's event, D has the other).
    CHECK(c.rho == bernstein_radius(c.n, schedule.alphas[static_cast<std::size_t>(look)] / 2, c.f_norm));
    // (Why each stopped is the rule's business, tested on hand-built certificates in
    // test_sequential.cpp.)
  }
  MESSAGE(early << " of 20 queries stopped early; " << drawn << " main samples against " << 20 * 3200 << " fixed");
  CHECK(early > 0);
  CHECK(drawn < 20 * 3200);
  for (const auto& s : run.stages) {
    if (s.stage != "samples") continue;
    CHECK(s.detail.find("sequential: ") != std::string::npos);
    // The stopping rule's wall time, so that where sequential's time goes is read off a run.
    CHECK(std::regex_search(s.detail, std::regex("drawn by this run, stopping rule [0-9]+\\.[0-9]{2} s,")));
  }
  const auto csv = ws.file("certificates.csv");
  const auto again = ws.run(sequential);
  CHECK(status_of(again, "samples") == "reused");
  CHECK(ws.file("certificates.csv") == csv);
  // The same stops at another thread count and forward batch (kernels may round F-hat in
  // its last bits; the decisions are far from such margins here).
  auto other_overrides = sequential;
  other_overrides.insert(other_overrides.end(), {"threads=1", "certifier.batch=37", "cache=" + (ws.root / "cache2").string()});
  const auto other = ws.run(other_overrides);
  REQUIRE(other.points[0].certificates.size() == point.certificates.size());
  for (std::size_t i = 0; i < point.certificates.size(); ++i) CHECK(other.points[0].certificates[i].n == point.certificates[i].n);
  // Every radius of the sequential run recomputed independently, each query at its look.
  recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5");
  // The sequential samples are their own cache entries: the fixed run beside them recomputes.
  CHECK(status_of(ws.run({"certifier.n=3200"}), "samples") == "computed");
}

namespace {
// Everything a certificate certifies, to compare two runs bit for bit.
void same_certificates(const RunResult& a, const RunResult& b) {
  const auto &one = a.points.at(0).certificates, &other = b.points.at(0).certificates;
  REQUIRE(one.size() == other.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    const auto &x = one[i], &y = other[i];
    INFO("query " << x.query_id);
    CHECK(x.query_id == y.query_id);
    CHECK(x.n == y.n);
    CHECK(x.rho == y.rho);
    CHECK(x.radius == y.radius);
    CHECK(x.radius_d == y.radius_d);
    CHECK(x.rank_radius == y.rank_radius);
    CHECK(evidence(x, "mean_embedding") == evidence(y, "mean_embedding"));
  }
}
}  // namespace

TEST_CASE("sequential sampling: other targets, alpha or its split replay the cached looks - a query that needs more continues its stream - the bytes of drawing from scratch and of shards") {
  Workspace ws("sequential_prefix");
  const std::vector<std::string> base{"certifier.n=3200", "certifier.sampling=sequential", "certifier.first_look=100"};
  auto with = [&](std::vector<std::string> more, const std::string& cache = "") {
    auto all = base;
    all.insert(all.end(), more.begin(), more.end());
    if (!cache.empty()) all.push_back("cache=" + (ws.root / cache).string());
    return all;
  };
  auto drawn = [](const RunResult& r) {
    std::int64_t total = 0;
    for (const auto& c : r.points[0].certificates) total += c.n;
    return total;
  };
  const auto few = ws.run(with({"certifier.target_radii=[0]"}));
  REQUIRE(status_of(few, "samples") == "computed");
  // More targets: some queries draw on past the looks the cache holds, from there.
  const auto more = ws.run(with({"certifier.target_radii=[0, 0.05, 0.1]"}));
  CHECK(status_of(more, "samples") == "resumed");
  CHECK(drawn(more) > drawn(few));
  const auto scratch = ws.run(with({"certifier.target_radii=[0, 0.05, 0.1]"}, "scratch"));
  CHECK(status_of(scratch, "samples") == "computed");
  same_certificates(more, scratch);
  // Fewer targets again: every query's stop is within what is cached now; nothing is drawn.
  const auto again = ws.run(with({"certifier.target_radii=[0]"}));
  CHECK(status_of(again, "samples") == "reused");
  same_certificates(again, few);
  // Another alpha moves every look's share: the stops replay on the cached states.
  const auto alpha = ws.run(with({"certifier.target_radii=[0]", "certifier.alpha=0.05"}));
  CHECK(status_of(alpha, "samples") != "computed");
  same_certificates(alpha, ws.run(with({"certifier.target_radii=[0]", "certifier.alpha=0.05"}, "scratch2")));
  // So does another split of alpha between the looks and n.
  const auto split = ws.run(with({"certifier.target_radii=[0]", "certifier.alpha_at_n=0.6"}));
  CHECK(status_of(split, "samples") != "computed");
  same_certificates(split, ws.run(with({"certifier.target_radii=[0]", "certifier.alpha_at_n=0.6"}, "scratch3")));
  // Two shards sample the blocks into a third cache; the run after them draws nothing and
  // certifies what the single run did.
  const auto more_spec = ws.spec(with({"certifier.target_radii=[0, 0.05, 0.1]"}, "sharded"));
  for (int shard = 0; shard < 2; ++shard) {
    RunOptions options;
    options.shard = shard;
    options.shards = 2;
    run_pipeline(more_spec, loader(), options);
  }
  const auto joined = run_pipeline(more_spec, loader(), RunOptions{});
  CHECK(status_of(joined, "samples") == "reused");
  same_certificates(joined, scratch);
  // Every radius of the last run recomputed independently, each query at its look.
  recomputed_independently(ws.root / "out" / "tiny" / "certificates.h5");
}
