// embedding_shift: maximise ||f(x') - f(x)|| (RobRank's "ES" attack, Zhou et al. 2020):
// label-free, it moves the query's embedding as far as the budget allows.
#include <torch/torch.h>

#include "rguard/adversarial.hpp"
#include "rguard/backbone.hpp"

namespace {

class EmbeddingShift final : public rguard::Attack {
 public:
  explicit EmbeddingShift(const rguard::Params& p) : params_(p) {}
  std::vector<double> epsilons() const override { return params_.get_float_list("eps"); }
  std::vector<at::Tensor> perturb(rguard::Backbone& model, const rguard::AttackTask& task) override {
    at::Tensor clean;
    {
      torch::NoGradGuard no_grad;
      clean = model.forward(task.images);
    }
    return rguard::pgd_l2(task.images, task.query_ids, rguard::parse_pgd_settings(params_, task.seed),
                          [&](const at::Tensor& x) { return (model.forward(x) - clean).pow(2).sum(1); });
  }

 private:
  rguard::Params params_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Attack, "embedding_shift", "1.0",
              "maximise the shift of the query's embedding from its clean one (RobRank ES)", EmbeddingShift,
              rguard::pgd_param_specs("20"))
