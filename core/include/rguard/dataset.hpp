// Plugin kind "dataset": produces the train set, the queries and the gallery.
#pragma once

#include <string>

#include "rguard/data.hpp"
#include "rguard/plugin.hpp"

namespace rguard {

class Dataset : public Plugin {
 public:
  // Loads everything (parameters were given at creation). Throws rguard::Error naming
  // the missing file or package when the data is not there.
  virtual RetrievalData load() = 0;
  // A cheap fingerprint of the files load() would read (paths, sizes, modification
  // times). Non-empty enables the "dataset" cache stage: load() is skipped while it holds.
  virtual std::string source_fingerprint() const { return ""; }
};

}  // namespace rguard
