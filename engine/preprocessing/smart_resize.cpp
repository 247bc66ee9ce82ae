#include "preprocessing/smart_resize.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

// Python's round(): half to even. std::nearbyint follows the current rounding mode, which we pin.
double round_half_even(double x) {
  const int saved = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  std::fesetround(saved);
  return r;
}

}  // namespace

std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor,
                                         int64_t min_pixels, int64_t max_pixels) {
  if (height <= 0 || width <= 0)
    throw Error(fmt::format("smart_resize: image size {}x{} (height x width) has an empty side", height, width));
  if (factor <= 0) throw Error(fmt::format("smart_resize: factor {} must be positive", factor));
  if (max_pixels <= 0) throw Error(fmt::format("smart_resize: max_pixels {} must be positive", max_pixels));
  // Python: max(h, w) / min(h, w) > 200, a true (double) division.
  const double aspect = static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
  if (aspect > 200.0)
    throw Error(fmt::format("smart_resize: image {}x{} has aspect ratio {}, transformers accepts at most 200",
                            height, width, aspect));

  const double h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  int64_t h_bar = static_cast<int64_t>(round_half_even(h / f)) * factor;
  int64_t w_bar = static_cast<int64_t>(round_half_even(w / f)) * factor;
  // h * w and min/max stay below 2^53 for any real image, so double(h * w) is exact as in Python.
  const double area = static_cast<double>(height * width);
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(max_pixels));
    h_bar = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    w_bar = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / area);
    h_bar = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  if (h_bar <= 0 || w_bar <= 0)
    throw Error(fmt::format("smart_resize: image {}x{} with min_pixels {} and max_pixels {} resizes to {}x{}",
                            height, width, min_pixels, max_pixels, h_bar, w_bar));
  return {h_bar, w_bar};
}

}  // namespace qwenvl::model
