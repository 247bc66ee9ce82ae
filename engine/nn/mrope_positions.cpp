#include "nn/mrope_positions.h"

#include <algorithm>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::nn {

MropePositions mrope_positions(const MropeInput& input, int64_t spatial_merge_size,
                               int64_t tokens_per_second) {
  const auto& types = input.token_types;
  const int64_t n = static_cast<int64_t>(types.size());
  auto positions = at::empty({3, n}, at::kLong);
  int64_t* t_row = positions[0].data_ptr<int64_t>();
  int64_t* h_row = positions[1].data_ptr<int64_t>();
  int64_t* w_row = positions[2].data_ptr<int64_t>();

  size_t next_image = 0, next_video = 0;
  int64_t cur = 0;
  for (int64_t start = 0; start < n;) {
    int64_t end = start;
    while (end < n && types[end] == types[start]) ++end;
    const auto type = static_cast<TokenType>(types[start]);
    if (type == TokenType::kText) {
      for (int64_t i = start; i < end; ++i) t_row[i] = h_row[i] = w_row[i] = cur + (i - start);
      cur += end - start;
    } else {
      const bool video = type == TokenType::kVideo;
      const auto& grids = video ? input.video_grids : input.image_grids;
      size_t& next = video ? next_video : next_image;
      if (next >= grids.size())
        throw Error(std::string("prompt has more ") + (video ? "video" : "image") + " runs than " +
                    (video ? "videos" : "images"));
      const GridTHW grid = grids[next];
      // 5.17 truncates the seconds per temporal patch to an integer before scaling (get_rope_index:
      // second_per_grid_t * tokens_per_second is cast to an integer tensor).
      int64_t interval = 1;
      if (video) {
        const double seconds = next < input.video_second_per_grid.size() ? input.video_second_per_grid[next] : 1.0;
        interval = tokens_per_second * static_cast<int64_t>(seconds);
      }
      ++next;
      const int64_t gt = grid[0], gh = grid[1] / spatial_merge_size, gw = grid[2] / spatial_merge_size;
      if (end - start != gt * gh * gw)
        throw Error("prompt has " + std::to_string(end - start) + " pad tokens for a media item of " +
                    std::to_string(gt * gh * gw) + " tokens");
      int64_t i = start;
      for (int64_t ti = 0; ti < gt; ++ti)
        for (int64_t hi = 0; hi < gh; ++hi)
          for (int64_t wi = 0; wi < gw; ++wi, ++i) {
            t_row[i] = cur + ti * interval;
            h_row[i] = cur + hi;
            w_row[i] = cur + wi;
          }
      cur += std::max(gh, gw);
    }
    start = end;
  }
  if (next_image != input.image_grids.size() || next_video != input.video_grids.size())
    throw Error("prompt has fewer image or video pad runs than media items");

  MropePositions out;
  out.positions = positions;
  if (n > 0) out.last = {t_row[n - 1], h_row[n - 1], w_row[n - 1]};
  else out.last = {-1, -1, -1};
  return out;
}

at::Tensor positions_after(const std::array<int64_t, 3>& last, int64_t n) {
  auto steps = at::arange(1, n + 1, at::kLong);
  return at::stack({steps + last[0], steps + last[1], steps + last[2]});
}

}  // namespace qwenvl::nn
