// Luma thumbnails and their difference, for change-threshold (see frame_change.h).
#include "frame_change.h"

#include <cmath>
#include <cstdint>

namespace qwenvl::gst {
namespace {

// BT.601 luma weights in thousandths, so that a pixel's weighted sum stays an exact integer.
constexpr uint32_t kWeightR = 299, kWeightG = 587, kWeightB = 114, kWeightScale = 1000;

// The cell of each of `n` pixels along one side split into `cells` cells: pixel i lies in cell
// i * cells / n, so every cell holds n / cells pixels, give or take one.
std::vector<int> cell_of(int n, int cells) {
  std::vector<int> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<int>(static_cast<int64_t>(i) * cells / n);
  return out;
}

// Sums `weighted(pixel)` over each cell of `plane` (pixels `bytes_per_pixel` apart) and divides by
// the cell's pixel count times `scale`.
template <typename Weighted>
LumaThumbnail area_average(const uint8_t* plane, int64_t stride, int width, int height, int bytes_per_pixel,
                           uint32_t scale, Weighted weighted) {
  LumaThumbnail t;
  t.width = width < kLumaGrid ? width : kLumaGrid;
  t.height = height < kLumaGrid ? height : kLumaGrid;
  const std::vector<int> column_cell = cell_of(width, t.width), row_cell = cell_of(height, t.height);
  std::vector<uint64_t> sums(static_cast<size_t>(t.width) * t.height, 0);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = plane + y * stride;
    uint64_t* cell_row = sums.data() + static_cast<size_t>(row_cell[static_cast<size_t>(y)]) * t.width;
    for (int x = 0; x < width; ++x) cell_row[column_cell[static_cast<size_t>(x)]] += weighted(row + x * bytes_per_pixel);
  }
  // Pixels per column and per row of cells; a cell holds their product.
  std::vector<uint64_t> columns(static_cast<size_t>(t.width), 0), rows(static_cast<size_t>(t.height), 0);
  for (int c : column_cell) ++columns[static_cast<size_t>(c)];
  for (int r : row_cell) ++rows[static_cast<size_t>(r)];
  t.cells.resize(sums.size());
  for (int cy = 0; cy < t.height; ++cy)
    for (int cx = 0; cx < t.width; ++cx) {
      const size_t i = static_cast<size_t>(cy) * t.width + cx;
      const double pixels = static_cast<double>(columns[static_cast<size_t>(cx)] * rows[static_cast<size_t>(cy)]);
      t.cells[i] = static_cast<float>(static_cast<double>(sums[i]) / (pixels * scale));
    }
  return t;
}

}  // namespace

LumaThumbnail luma_thumbnail(const FrameView& frame) {
  if (frame.width <= 0 || frame.height <= 0 || frame.planes[0] == nullptr) return {};
  const uint8_t* plane = frame.planes[0];
  const int64_t stride = frame.strides[0];
  if (is_yuv(frame.format))
    return area_average(plane, stride, frame.width, frame.height, 1, 1, [](const uint8_t* p) { return uint32_t{p[0]}; });
  const int bpp = rgb_bytes_per_pixel(frame.format);
  if (bpp == 0) return {};
  const bool bgr = frame.format == PixelFormat::kBGR || frame.format == PixelFormat::kBGRA ||
                   frame.format == PixelFormat::kBGRx;
  const int r = bgr ? 2 : 0, b = bgr ? 0 : 2;
  return area_average(plane, stride, frame.width, frame.height, bpp, kWeightScale, [r, b](const uint8_t* p) {
    return kWeightR * p[r] + kWeightG * p[1] + kWeightB * p[b];
  });
}

std::optional<double> mean_abs_difference(const LumaThumbnail& a, const LumaThumbnail& b) {
  if (a.empty() || b.empty() || a.width != b.width || a.height != b.height) return std::nullopt;
  double sum = 0;
  for (size_t i = 0; i < a.cells.size(); ++i) sum += std::fabs(static_cast<double>(a.cells[i]) - b.cells[i]);
  return sum / static_cast<double>(a.cells.size());
}

bool differs_by_more_than(const LumaThumbnail& now, const LumaThumbnail& reference, double threshold) {
  const std::optional<double> difference = mean_abs_difference(now, reference);
  return !difference || *difference > threshold;
}

}  // namespace qwenvl::gst
