// The coefficients of GStreamer 1.22 videoconvert's YUV -> RGB for a matrix and range: header-only
// (no ATen), so that the engine's frame preparation and the remote engine's frame encoding, which
// must not link libtorch, turn a YUV frame into the same RGB bytes.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/frame_preparation_math.h"
#include "qwenvl/pixel_format.h"

namespace qwenvl::kernels {

// How GStreamer 1.22's videoconvert turns a YUV frame into RGB: the five 8.8 fixed-point
// coefficients of its orc functions for the matrix and range, and whether NV12 chroma is
// H-cosited. kAuto resolves as gst_video_info_from_caps does for caps without colorimetry: above
// 576 lines BT.709 with H-cosited chroma, else BT.601; an explicit matrix acts as caps with that
// colorimetry and no chroma site. The CPU reference and the CUDA kernels both take it from here.
struct VideoconvertYuv {
  frame_math::YuvCoefficients coefficients;
  bool chroma_h_cosited = false;
};
inline VideoconvertYuv videoconvert_yuv(YuvMatrix matrix, bool full_range, int64_t height) {
  VideoconvertYuv out;
  if (matrix == YuvMatrix::kAuto) {
    const bool hd = height > 576;
    matrix = hd ? YuvMatrix::kBT709 : YuvMatrix::kBT601;
    out.chroma_h_cosited = hd;
  }
  double kr = 0.2990, kb = 0.1140;  // gst_video_color_matrix_get_Kr_Kb
  if (matrix == YuvMatrix::kBT709) kr = 0.2126, kb = 0.0722;
  if (matrix == YuvMatrix::kBT2020) kr = 0.2627, kb = 0.0593;
  const double kg = 1.0 - kr - kb;
  // color_matrix_YCbCr_to_RGB's entries; columns Y, Cb, Cr.
  const double v_r = 2 * (1 - kr), u_g = -2 * kb * (1 - kb) / kg, v_g = -2 * kr * (1 - kr) / kg, u_b = 2 * (1 - kb);
  // gst_video_color_range_offsets (8 bits), applied as 1 / (float) scale.
  const double inv_y = 1 / static_cast<float>(full_range ? 255 : 219);
  const double inv_c = 1 / static_cast<float>(full_range ? 255 : 224);
  // Same order of products as the 4x4 matrix chain: (K * 1/scale) * 255 * 256, then rint.
  auto coefficient = [](double k, double inv_scale) {
    return static_cast<int16_t>(std::rint(256.0 * (255.0 * (k * inv_scale))));
  };
  out.coefficients.y = coefficient(1.0, inv_y);
  out.coefficients.v_to_r = coefficient(v_r, inv_c);
  out.coefficients.u_to_b = coefficient(u_b, inv_c);
  out.coefficients.u_to_g = coefficient(u_g, inv_c);
  out.coefficients.v_to_g = coefficient(v_g, inv_c);
  return out;
}

}  // namespace qwenvl::kernels
