// The target size of an image or video frame before patchify: both sides multiples of `factor`
// (patch_size * merge_size), the pixel count inside [min_pixels, max_pixels], the aspect ratio
// kept as closely as possible. transformers 5.17 `smart_resize` (models/qwen2_vl/image_processing_qwen2_vl.py).
#pragma once

#include <cstdint>
#include <utility>

namespace qwenvl::model {

// Returns {height, width}. Computed in double precision with Python's round-half-to-even, as
// transformers does. Throws qwenvl::Error for a zero or negative side, an aspect ratio above 200
// (transformers' ValueError) or limits that leave a side at zero.
std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor,
                                         int64_t min_pixels, int64_t max_pixels);

}  // namespace qwenvl::model
