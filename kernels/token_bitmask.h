// Constrained decoding's token masks applied to a batch of logits: each mask row is a packed bitmask
// (bit j % 32 of int32 word j / 32 set: id j allowed, xgrammar's layout) for one logits row, and every
// id it forbids gets -inf in place; allowed ids are left untouched, bit for bit. One pass and, on a
// GPU, one launch for the whole batch; nothing of the logits is read.
#pragma once

#include <ATen/ATen.h>

namespace qwenvl::kernels {

// logits: fp32 [R, V], each row contiguous; bitmask: int32 [n, W] contiguous, W * 32 >= V (bits past
// V are ignored); rows: int32 [n], the logits row that each mask row applies to (distinct, in
// [0, R)). All three on one device; n = 0 does nothing.
void apply_token_bitmask(at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows);

}  // namespace qwenvl::kernels
