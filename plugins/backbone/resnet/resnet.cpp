// resnet: ResNet-18 or ResNet-50 in LibTorch (He et al. 2016; torchvision's layout and
// parameter names, so torchvision weights load by name), with ImageNet normalisation as
// the first layer (noise stays in [0,1] pixel space), the classifier replaced by an
// embedding head `fc` to k dimensions, and l2 normalisation. Optional frozen BatchNorm
// (statistics and affine parameters fixed during training), as in Roth et al. 2020.
#include <fmt/format.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>
#include <set>

#include "rguard/backbone.hpp"
#include "rguard/error.hpp"
#include "rguard/hash.hpp"
#include "rguard/training.hpp"

namespace {

using rguard::Error;
namespace nn = torch::nn;

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

// torchvision's BasicBlock (expansion 1) and Bottleneck (expansion 4, stride in conv2: v1.5).
struct BlockImpl : nn::Module {
  BlockImpl(std::int64_t in, std::int64_t planes, std::int64_t stride, bool bottleneck) : bottleneck_(bottleneck) {
    const std::int64_t out = planes * (bottleneck ? 4 : 1);
    if (bottleneck) {
      conv1 = register_module("conv1", conv(in, planes, 1, 1, 0));
      bn1 = register_module("bn1", nn::BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
      bn2 = register_module("bn2", nn::BatchNorm2d(planes));
      conv3 = register_module("conv3", conv(planes, out, 1, 1, 0));
      bn3 = register_module("bn3", nn::BatchNorm2d(out));
    } else {
      conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
      bn1 = register_module("bn1", nn::BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
      bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    }
    if (stride != 1 || in != out)
      downsample = register_module("downsample", nn::Sequential(conv(in, out, 1, stride, 0), nn::BatchNorm2d(out)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    if (bottleneck_) y = bn3(conv3(torch::relu(y)));
    return torch::relu(y + (downsample ? downsample->forward(x) : x));
  }
  bool bottleneck_;
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Block);

struct NetImpl : nn::Module {
  NetImpl(std::int64_t depth, std::int64_t dim) {
    const bool bottleneck = depth == 50;
    const std::vector<std::int64_t> blocks = depth == 50 ? std::vector<std::int64_t>{3, 4, 6, 3} : std::vector<std::int64_t>{2, 2, 2, 2};
    conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    std::int64_t in = 64;
    const std::int64_t planes[] = {64, 128, 256, 512};
    for (int l = 0; l < 4; ++l) {
      nn::Sequential layer;
      for (std::int64_t b = 0; b < blocks[static_cast<std::size_t>(l)]; ++b) {
        layer->push_back(Block(in, planes[l], b == 0 && l > 0 ? 2 : 1, bottleneck));
        in = planes[l] * (bottleneck ? 4 : 1);
      }
      layers.push_back(register_module(fmt::format("layer{}", l + 1), layer));
    }
    fc = register_module("fc", nn::Linear(in, dim));
    // torchvision's initialisation: Kaiming normal (fan_out) for convolutions, BN at 1/0.
    for (auto& m : modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (auto* b = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(b->weight);
        nn::init::zeros_(b->bias);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(bn1(conv1(x))), 3, 2, 1);
    for (auto& layer : layers) x = layer->forward(x);
    return fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
  }
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  std::vector<nn::Sequential> layers;
  nn::Linear fc{nullptr};
};
TORCH_MODULE(Net);

class ResNet final : public rguard::Backbone {
 public:
  explicit ResNet(const rguard::Params& p)
      : depth_(p.get_int("depth")),
        dim_(p.get_int("embedding_dim")),
        mean_(p.get_float_list("input_mean")),
        std_(p.get_float_list("input_std")),
        weights_(p.get_string("weights")),
        frozen_bn_(p.get_bool("frozen_bn")),
        config_(rguard::parse_train_config(p)) {
    if (depth_ != 18 && depth_ != 50) throw Error(fmt::format("backbone.depth: expected 18 or 50, got {}", depth_));
    if (mean_.size() != 3 || std_.size() != 3)
      throw Error("backbone.input_mean and backbone.input_std: expected three values (RGB)");
    if (!weights_.empty()) {
      auto hash = rguard::hash_file(weights_);
      if (!hash)
        throw Error(fmt::format("{}: weights file not found (backbone.weights; docs/models-and-data.md says how to "
                                "export torchvision's ImageNet weights)",
                                weights_));
      fingerprint_ = *hash;
    }
  }

  std::string fingerprint() const override { return fingerprint_; }

  void init(const rguard::ImageShape& input, std::uint64_t seed) override {
    if (input.channels != 1 && input.channels != 3)
      throw Error(fmt::format("backbone resnet: images must have 1 (repeated to RGB) or 3 channels, got {}", input.channels));
    torch::manual_seed(seed);
    net_ = Net(depth_, dim_);
    if (!weights_.empty()) load_weights();
    net_->eval();
  }

  at::Tensor forward(const at::Tensor& images) override {
    auto x = images.size(1) == 1 ? images.expand({-1, 3, -1, -1}) : images;
    x = (x - torch::tensor(mean_, x.options()).view({1, 3, 1, 1})) / torch::tensor(std_, x.options()).view({1, 3, 1, 1});
    return torch::nn::functional::normalize(net_->forward(x), torch::nn::functional::NormalizeFuncOptions().dim(1));
  }

  void set_training(bool training) override {
    net_->train(training);
    if (frozen_bn_)
      for (auto& m : net_->modules(false))
        if (auto* b = m->as<nn::BatchNorm2d>()) b->eval();
  }
  void to(const c10::Device& device) override { net_->to(device); }
  rguard::NamedTensors state() override {
    rguard::NamedTensors out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    for (const auto& item : net_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::vector<at::Tensor> trainable_parameters() override {
    std::set<const void*> batch_norm;  // frozen: BatchNorm weights and biases, downsample ones included
    if (frozen_bn_)
      for (auto& m : net_->modules(false))
        if (auto* b = m->as<nn::BatchNorm2d>()) {
          batch_norm.insert(b->weight.unsafeGetTensorImpl());
          batch_norm.insert(b->bias.unsafeGetTensorImpl());
        }
    std::vector<at::Tensor> out;
    for (const auto& t : net_->parameters())
      if (!batch_norm.count(t.unsafeGetTensorImpl())) out.push_back(t);
    return out;
  }
  std::int64_t embedding_dim() const override { return dim_; }
  const rguard::TrainConfig& train_config() const override { return config_; }

 private:
  // Copies every tensor of a TorchScript file (e.g. a scripted torchvision ResNet) whose name
  // and shape match; the head `fc` loads only when its size is k.
  void load_weights() {
    torch::jit::script::Module module;
    try {
      module = torch::jit::load(weights_);
    } catch (const c10::Error& e) {
      throw Error(fmt::format("{}: not a TorchScript file torch.jit.load can read: {}", weights_, e.what_without_backtrace()));
    }
    std::map<std::string, at::Tensor> stored;
    for (const auto& item : module.named_parameters()) stored[item.name] = item.value;
    for (const auto& item : module.named_buffers()) stored[item.name] = item.value;
    torch::NoGradGuard no_grad;
    std::vector<std::string> missing;
    for (auto& [name, tensor] : state()) {
      auto it = stored.find(name);
      const bool head = name.rfind("fc.", 0) == 0;
      if (it == stored.end() || it->second.sizes() != tensor.sizes()) {
        if (!head) missing.push_back(name);
        continue;
      }
      tensor.copy_(it->second);
    }
    if (!missing.empty())
      throw Error(fmt::format("{}: {} tensors of resnet{} are missing or differ in shape (first: {}); is it a "
                              "torchvision resnet{}?",
                              weights_, missing.size(), depth_, missing.front(), depth_));
  }

  std::int64_t depth_, dim_;
  std::vector<double> mean_, std_;
  std::string weights_, fingerprint_;
  bool frozen_bn_;
  rguard::TrainConfig config_;
  Net net_{nullptr};
};

std::vector<rguard::ParamSpec> schema() {
  std::vector<rguard::ParamSpec> specs{
      {.name = "depth", .type = rguard::ParamType::Int, .default_value = "50", .doc = "18 or 50", .min = 18, .max = 50},
      {.name = "embedding_dim", .type = rguard::ParamType::Int, .default_value = "128", .doc = "k", .min = 1},
      {.name = "input_mean", .type = rguard::ParamType::FloatList, .default_value = "[0.485, 0.456, 0.406]",
       .doc = "ImageNet RGB mean, subtracted inside the model"},
      {.name = "input_std", .type = rguard::ParamType::FloatList, .default_value = "[0.229, 0.224, 0.225]",
       .doc = "ImageNet RGB std, divided inside the model", .min = 0, .min_exclusive = true},
      {.name = "weights", .type = rguard::ParamType::Path, .default_value = "",
       .doc = "TorchScript file of a torchvision ResNet whose tensors initialise the trunk (\"\" = random)"},
      {.name = "frozen_bn", .type = rguard::ParamType::Bool, .default_value = "false",
       .doc = "keep BatchNorm statistics and parameters fixed during training"},
  };
  for (auto& spec : rguard::train_param_specs()) specs.push_back(spec);
  return specs;
}

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Backbone, "resnet", "1.0",
              "ResNet-18/50 (torchvision layout) with an embedding head to k and l2 normalisation", ResNet, schema())
