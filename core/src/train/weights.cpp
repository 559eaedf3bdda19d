#include "train/weights.hpp"

#include <fmt/format.h>
#include <torch/types.h>

#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/tensors.hpp"

namespace rguard {

namespace {
template <class T>
at::Tensor tensor_from(std::vector<T> values, const std::vector<std::uint64_t>& shape, torch::ScalarType type) {
  std::vector<std::int64_t> sizes(shape.begin(), shape.end());
  return torch::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, type).clone().view(sizes);
}
}  // namespace

std::string hash_weights(const NamedTensors& state) {
  Hasher h;
  for (const auto& [name, tensor] : state) {
    h.text(name);
    hash_tensor(h, tensor);
  }
  return h.hex();
}

void store_weights(H5File& file, const NamedTensors& state) {
  std::int64_t i = 0;
  for (const auto& [name, tensor] : state) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const std::string path = fmt::format("/state/{:04d}", i++);
    std::vector<std::uint64_t> shape(t.sizes().begin(), t.sizes().end());
    if (shape.empty()) shape.push_back(1);
    if (t.scalar_type() == torch::kFloat) file.write(path, t.data_ptr<float>(), shape);
    else if (t.scalar_type() == torch::kDouble) file.write(path, t.data_ptr<double>(), shape);
    else if (t.scalar_type() == torch::kLong) file.write(path, t.data_ptr<std::int64_t>(), shape);
    else throw Error(fmt::format("state '{}' has unsupported dtype {}", name, c10::toString(t.scalar_type())));
    file.set_attribute(path, "name", name);
  }
}

void restore_weights(const H5File& file, const NamedTensors& state) {
  torch::NoGradGuard no_grad;
  std::int64_t i = 0;
  for (auto [name, live] : state) {
    const std::string path = fmt::format("/state/{:04d}", i++);
    if (file.attribute_string(path, "name") != name)
      throw Error(fmt::format("{}: {}: stored tensor is not '{}'", file.path(), path, name));
    std::vector<std::uint64_t> shape;
    at::Tensor stored;
    if (live.scalar_type() == torch::kFloat) stored = tensor_from(file.read<float>(path, &shape), shape, torch::kFloat);
    else if (live.scalar_type() == torch::kDouble) stored = tensor_from(file.read<double>(path, &shape), shape, torch::kDouble);
    else stored = tensor_from(file.read<std::int64_t>(path, &shape), shape, torch::kLong);
    if (stored.numel() != live.numel())
      throw Error(fmt::format("{}: {}: stored tensor '{}' has {} values, the model {}", file.path(), path, name,
                              stored.numel(), live.numel()));
    live.copy_(stored.view(live.sizes()));
  }
}

void store_checkpoint(H5File& file, const NamedTensors& state, const TrainCheckpoint& c, double train_seconds) {
  store_weights(file, state);
  const std::vector<std::uint8_t> optimiser(c.optimiser.begin(), c.optimiser.end());
  file.write("/optimiser", optimiser);
  file.write("/generator", c.generator);
  file.set_attribute("/", "epochs_done", c.epochs_done);
  file.set_attribute("/", "beta", c.beta);
  file.set_attribute("/", "train_seconds", train_seconds);
}

TrainCheckpoint restore_checkpoint(const H5File& file, const NamedTensors& state, double& train_seconds) {
  restore_weights(file, state);
  TrainCheckpoint c;
  c.epochs_done = file.attribute_int("/", "epochs_done");
  c.beta = file.attribute_double("/", "beta");
  const auto optimiser = file.read<std::uint8_t>("/optimiser");
  c.optimiser.assign(optimiser.begin(), optimiser.end());
  c.generator = file.read<std::uint8_t>("/generator");
  train_seconds = file.attribute_double("/", "train_seconds");
  return c;
}

}  // namespace rguard
