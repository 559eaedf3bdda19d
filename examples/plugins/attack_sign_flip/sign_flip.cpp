// sign_flip: an example attack from outside rguard's tree. One step along the sign of the
// gradient that pulls each query's embedding away from its nearest positive, scaled to l2
// norm eps and kept in [0, 1] (a one-step, embedding-native FGM).
#include <rguard/adversarial.hpp>
#include <rguard/attack.hpp>
#include <rguard/backbone.hpp>
#include <torch/torch.h>

namespace {

class SignFlip final : public rguard::Attack {
 public:
  explicit SignFlip(const rguard::Params& p) : eps_(p.get_float_list("eps")) {}
  std::vector<double> epsilons() const override { return eps_; }

  std::vector<at::Tensor> perturb(rguard::Backbone& model, const rguard::AttackTask& task) override {
    auto x = task.images.detach().clone().requires_grad_(true);
    const auto e = model.forward(x);
    // Similarity to the nearest positive of each query (its own gallery row excluded).
    auto similarity = e.matmul(task.gallery.t());
    auto positive = task.labels.unsqueeze(1) == task.gallery_labels.unsqueeze(0);
    const auto has_own = task.gallery_index >= 0;
    const auto rows = torch::arange(task.images.size(0), task.labels.options()).masked_select(has_own);
    positive.index_put_({rows, task.gallery_index.masked_select(has_own)}, false);
    const auto loss = similarity.masked_fill(~positive, -2.0).amax(1).sum();
    const auto gradient = torch::autograd::grad({loss}, {x})[0];
    const auto direction = rguard::normalize_per_example(-gradient.sign());
    std::vector<at::Tensor> out;
    for (double eps : eps_)
      out.push_back(task.images + rguard::project_l2(eps * direction, task.images, eps));
    return out;
  }

 private:
  std::vector<double> eps_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Attack, "sign_flip", "1.0", "example out-of-tree attack: one signed-gradient step of l2 norm eps",
              SignFlip,
              (std::vector<rguard::ParamSpec>{
                  {.name = "norm", .type = rguard::ParamType::String, .default_value = "l2",
                   .doc = "l2 over all pixels of a [0,1] image", .choices = "l2"},
                  {.name = "eps", .type = rguard::ParamType::FloatList, .default_value = "[0.1, 0.5]",
                   .doc = "l2 norms in [0,1] pixel units", .min = 0}}))
