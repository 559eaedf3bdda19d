#include "attack/attack_io.hpp"

namespace rguard {

namespace {
template <class Small>
std::vector<std::int64_t> widen(const std::vector<Small>& values) {
  return {values.begin(), values.end()};
}
std::vector<std::int8_t> narrow(const std::vector<std::int64_t>& values) {
  std::vector<std::int8_t> out;
  for (auto v : values) out.push_back(static_cast<std::int8_t>(v));
  return out;
}
}  // namespace

void write_attack_outcome(H5File& file, const std::string& g, const AttackOutcome& o) {
  file.write(g + "/query_id", o.query_id);
  file.write(g + "/base_correct", widen(o.base_correct));
  file.write(g + "/smoothed_correct", widen(o.smoothed_correct));
  file.write(g + "/status", widen(o.status));
  file.write(g + "/perturbation", o.perturbation);
  file.write(g + "/smoothed_margin", o.smoothed_margin);
  if (!o.images.empty()) file.write(g + "/images", o.images.data(), o.image_shape);
  file.set_attribute(g, "attack", o.attack);
  file.set_attribute(g, "parameters", o.parameters);
  file.set_attribute(g, "eps", o.eps);
  file.set_attribute(g, "rho", o.rho);
  file.set_attribute(g, "alpha", o.alpha);
  file.set_attribute(g, "samples", o.samples);
}

AttackOutcome read_attack_outcome(const H5File& file, const std::string& g, bool images) {
  AttackOutcome o;
  o.attack = file.attribute_string(g, "attack");
  o.parameters = file.attribute_string(g, "parameters");
  o.eps = file.attribute_double(g, "eps");
  o.rho = file.attribute_double(g, "rho");
  o.alpha = file.attribute_double(g, "alpha");
  o.samples = file.attribute_int(g, "samples");
  o.query_id = file.read<std::int64_t>(g + "/query_id");
  o.base_correct = narrow(file.read<std::int64_t>(g + "/base_correct"));
  o.smoothed_correct = narrow(file.read<std::int64_t>(g + "/smoothed_correct"));
  o.status = narrow(file.read<std::int64_t>(g + "/status"));
  o.perturbation = file.read<double>(g + "/perturbation");
  o.smoothed_margin = file.read<double>(g + "/smoothed_margin");
  if (images) o.images = file.read<float>(g + "/images", &o.image_shape);
  return o;
}

}  // namespace rguard
