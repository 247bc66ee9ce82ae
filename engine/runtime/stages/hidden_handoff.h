// How the hidden states of a micro-batch cross from one stage's device to the next's: libtorch's
// device copy (peer to peer where the GPUs allow it), or staged through pinned host memory where
// asked (StageTuning::copy_through_host), which also runs between two stages of one GPU.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::runtime::stages {

// `x` on `to`. On one device with no staging it is `x` itself: the receiving stage never writes
// into what it is handed (its forward starts from a copy of its own).
at::Tensor hand_off(const at::Tensor& x, const at::Device& to, bool through_host);

}  // namespace qwenvl::runtime::stages
