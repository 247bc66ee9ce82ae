// What one device holds and runs in a plan: a range of the language model's layers, the
// embeddings (first stage), the final norm and LM head (last stage), the vision tower.
#pragma once

#include <cstdint>

namespace qwenvl::runtime::placement {

struct StageRoles {
  int64_t first_layer = 0, end_layer = 0;  // [first_layer, end_layer)
  bool embeddings = false;
  bool lm_head = false;
  bool vision = false;
  int64_t layers() const { return end_layer - first_layer; }
  bool empty() const { return layers() == 0 && !vision; }
};

}  // namespace qwenvl::runtime::placement
