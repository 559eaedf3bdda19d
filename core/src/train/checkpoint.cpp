#include "train/checkpoint.hpp"

#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/types.h>

#include <sstream>

namespace rguard {

TrainCheckpoint capture_checkpoint(std::int64_t epochs_done, double beta, torch::optim::Optimizer& optimiser,
                                   const at::Generator& generator) {
  TrainCheckpoint state;
  state.epochs_done = epochs_done;
  state.beta = beta;
  torch::serialize::OutputArchive archive;
  optimiser.save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  state.optimiser = bytes.str();
  const auto g = generator.get_state().contiguous();
  state.generator.assign(g.data_ptr<std::uint8_t>(), g.data_ptr<std::uint8_t>() + g.numel());
  return state;
}

void resume_checkpoint(const TrainCheckpoint& checkpoint, torch::optim::Optimizer& optimiser, at::Generator& generator) {
  torch::serialize::InputArchive archive;
  std::istringstream bytes(checkpoint.optimiser);
  archive.load_from(bytes);
  optimiser.load(archive);
  generator.set_state(
      torch::tensor(std::vector<std::uint8_t>(checkpoint.generator.begin(), checkpoint.generator.end()), torch::kUInt8));
}

}  // namespace rguard
