// pgd_l2: PGD in l2 on the base model with an embedding-native objective: push the
// query's embedding toward its nearest wrong-class gallery item and away from its nearest
// right-class one (maximise d(nearest positive) - d(nearest negative): the 1-NN flips
// when it turns positive). Random start in the ball, normalised gradient steps,
// projection onto the eps ball and [0, 1], restarts; every eps of the list in one call.
#include "rguard/adversarial.hpp"
#include "rguard/backbone.hpp"

namespace {

class PgdL2 final : public rguard::Attack {
 public:
  explicit PgdL2(const rguard::Params& p) : params_(p) {}
  std::vector<double> epsilons() const override { return params_.get_float_list("eps"); }
  std::vector<at::Tensor> perturb(rguard::Backbone& model, const rguard::AttackTask& task) override {
    return rguard::pgd_l2(task.images, task.query_ids, rguard::parse_pgd_settings(params_, task.seed),
                          [&](const at::Tensor& x) { return rguard::retrieval_margin(model.forward(x), task); });
  }

 private:
  rguard::Params params_;
};

}  // namespace

RGUARD_PLUGIN(rguard::PluginKind::Attack, "pgd_l2", "1.0",
              "l2 PGD on the base model, embedding-native (flip the 1-NN to a wrong class)", PgdL2,
              rguard::pgd_param_specs("20"))
