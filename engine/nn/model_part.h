// Which parts of the network one device holds: a contiguous range of the language model's decoder
// layers, the token embeddings, the final norm with the LM head, the vision tower. One device holds
// the whole model; a pipeline stage (runtime/stages/) holds its share of it.
#pragma once

#include <cstdint>

namespace qwenvl::nn {

struct ModelPart {
  int64_t first_layer = 0;
  int64_t end_layer = -1;  // layers [first_layer, end_layer); -1: through the last layer
  bool embeddings = true;  // the token embeddings (the first stage)
  bool lm_head = true;     // the final norm and the LM head (the last stage)
  bool vision = true;      // the vision tower
};

}  // namespace qwenvl::nn
