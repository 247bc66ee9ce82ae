#include "nn/vision_geometry.h"

#include <algorithm>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::nn {

namespace {

at::Tensor int64_tensor(const std::vector<int64_t>& v, int64_t cols = 1) {
  auto t = at::empty({static_cast<int64_t>(v.size()) / cols, cols}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return cols == 1 ? t.view({-1}) : t;
}

at::Tensor int32_tensor(const std::vector<int64_t>& v) {
  auto t = at::empty({static_cast<int64_t>(v.size())}, at::kInt);
  std::transform(v.begin(), v.end(), t.data_ptr<int32_t>(),
                 [](int64_t x) { return static_cast<int32_t>(x); });
  return t;
}

}  // namespace

VisionGeometry vision_geometry(const std::vector<GridTHW>& grids, int64_t merge_size,
                               int64_t window_size, int64_t patch_size) {
  const int64_t unit = merge_size * merge_size;
  // Window side in merged tokens (transformers: window_size // merge_size // patch_size).
  const int64_t win = window_size / merge_size / patch_size;
  if (win <= 0) throw Error("vision config: window_size " + std::to_string(window_size) + " is smaller than one merged patch");

  std::vector<int64_t> hw, window_index, cu_window{0}, cu_full{0};
  int64_t merged_offset = 0;
  for (const auto& [t, h, w] : grids) {
    if (t <= 0 || h <= 0 || w <= 0 || h % merge_size || w % merge_size)
      throw Error("vision grid (" + std::to_string(t) + ", " + std::to_string(h) + ", " +
                  std::to_string(w) + ") is not a positive multiple of the merge size " +
                  std::to_string(merge_size));
    const int64_t lh = h / merge_size, lw = w / merge_size;
    // Patch positions: merge groups row-major, the merge_size x merge_size patches of a group
    // row-major inside it; repeated for every frame group (the ViT encodes no time).
    for (int64_t ti = 0; ti < t; ++ti) {
      for (int64_t bh = 0; bh < lh; ++bh)
        for (int64_t bw = 0; bw < lw; ++bw)
          for (int64_t mr = 0; mr < merge_size; ++mr)
            for (int64_t mc = 0; mc < merge_size; ++mc) {
              hw.push_back(bh * merge_size + mr);
              hw.push_back(bw * merge_size + mc);
            }
      cu_full.push_back(cu_full.back() + h * w);
    }
    // Windows of win x win merged tokens; the grid is padded at the bottom and right (a full
    // window of padding when already divisible, as transformers does; empty windows are dropped).
    const int64_t nwh = (lh + win - lh % win) / win, nww = (lw + win - lw % win) / win;
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t wh = 0; wh < nwh; ++wh)
        for (int64_t ww = 0; ww < nww; ++ww) {
          int64_t count = 0;
          for (int64_t i = wh * win; i < std::min(lh, (wh + 1) * win); ++i)
            for (int64_t j = ww * win; j < std::min(lw, (ww + 1) * win); ++j) {
              window_index.push_back(merged_offset + (ti * lh + i) * lw + j);
              ++count;
            }
          if (count > 0) cu_window.push_back(cu_window.back() + count * unit);
        }
    merged_offset += t * lh * lw;
  }

  VisionGeometry g;
  g.num_patches = merged_offset * unit;
  g.hw_positions = int64_tensor(hw, 2);
  g.window_index = int64_tensor(window_index);
  std::vector<int64_t> reverse(window_index.size());
  for (size_t k = 0; k < window_index.size(); ++k) reverse[window_index[k]] = static_cast<int64_t>(k);
  g.reverse_index = int64_tensor(reverse);
  g.cu_window_seqlens = int32_tensor(cu_window);
  g.cu_seqlens = int32_tensor(cu_full);
  for (size_t i = 1; i < cu_window.size(); ++i)
    g.max_window_seqlen = std::max(g.max_window_seqlen, cu_window[i] - cu_window[i - 1]);
  for (size_t i = 1; i < cu_full.size(); ++i)
    g.max_seqlen = std::max(g.max_seqlen, cu_full[i] - cu_full[i - 1]);
  return g;
}

}  // namespace qwenvl::nn
