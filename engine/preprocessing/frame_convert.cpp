// Frame copy and conversion to RGB, matching GStreamer 1.22's videoconvert with default properties
// (chroma-resampler linear, chroma-mode full, matrix-mode full, gamma/primaries none, dither
// quantization 1 = no dither, n-threads 1). What videoconvert does, from gst-plugins-base 1.22
// gst-libs/gst/video/video-converter.c, video-chroma.c and video-orc.orc:
//
// - I420 -> RGB takes the fastpath convert_I420_pack_ARGB: each chroma sample is repeated for its
//   2x2 pixels (nearest, no interpolation).
// - NV12 -> RGB has no fastpath: the generic chain unpacks to AYUV (chroma repeated), then
//   upsamples chroma in place with video-chroma.c: horizontally a 3/4-1/4 filter, or for a chroma
//   site with H_COSITED (set only by the default colorimetry above 576 lines; caps with colorimetry
//   but no chroma-site leave it UNKNOWN) the average of the two neighbours; then vertically a
//   3/4-1/4 filter on line pairs (2k-1, 2k) (no chroma site we meet sets V_COSITED).
// - Both then apply the same orc arithmetic (video_orc_convert_I420_ARGB / _AYUV_ARGB): bytes minus
//   128 as signed, widened by byte splatting ((s << 8) | (s & 0xff)), multiplied by 8.8 fixed-point
//   coefficients keeping the high 16 bits, summed, saturated to a signed byte, plus 128. The
//   coefficients are
//   rint(256 * 255 * K / scale) with the range's scale (219 / 224 limited, 255 full) taken as a
//   float reciprocal. Range offsets are not applied in these orc paths, so limited-range Y is
//   centred on 128, not 16 (Y=235 gives 253, not 255): we reproduce that, since the point is
//   identical pixels.
#include "preprocessing/frame_convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "kernels/frame_preparation.h"

namespace qwenvl::model {
namespace {

std::string describe(const FrameView& frame) {
  return fmt::format("frame {}x{} {}", frame.width, frame.height, pixel_format_name(frame.format));
}

bool is_known_format(PixelFormat format) {
  const auto& all = supported_pixel_formats();
  return std::find(all.begin(), all.end(), format) != all.end();
}

// The colorimetry, its coefficients and the orc arithmetic are kernels/frame_preparation's, which
// the GPU path shares bit for bit.
using kernels::frame_math::YuvCoefficients;
using kernels::frame_math::mulhsw;
using kernels::frame_math::saturate_plus_128;
using kernels::frame_math::splat_signed;

// One output row from Y and full-width U, V rows. Written as int16 lanes into planar R, G, B
// chunks so that the compiler vectorizes it (pmulhw is mulhsw), then interleaved.
void yuv_row_to_rgb(const YuvCoefficients& c, const uint8_t* __restrict y, const uint8_t* __restrict u,
                    const uint8_t* __restrict v, int width, uint8_t* __restrict out) {
  constexpr int kChunk = 512;
  uint8_t r[kChunk], g[kChunk], b[kChunk];
  for (int x0 = 0; x0 < width; x0 += kChunk) {
    const int n = std::min(kChunk, width - x0);
    const uint8_t *cy = y + x0, *cu = u + x0, *cv = v + x0;
    for (int x = 0; x < n; ++x) {
      const int16_t ly = mulhsw(splat_signed(cy[x]), c.y);
      const int16_t su = splat_signed(cu[x]), sv = splat_signed(cv[x]);
      r[x] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(sv, c.v_to_r)));
      g[x] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(su, c.u_to_g) + mulhsw(sv, c.v_to_g)));
      b[x] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(su, c.u_to_b)));
    }
    uint8_t* o = out + 3 * static_cast<size_t>(x0);
    for (int x = 0; x < n; ++x) o[3 * x] = r[x], o[3 * x + 1] = g[x], o[3 * x + 2] = b[x];
  }
}

// ---- I420: the fastpath, chroma repeated ----------------------------------------------------

void convert_i420(const FrameView& f, const YuvCoefficients& c, uint8_t* rgb) {
  const int w = f.width;
  std::vector<uint8_t> u(w), v(w);
  for (int row = 0; row < f.height; ++row) {
    const uint8_t* y = f.planes[0] + static_cast<size_t>(row) * f.strides[0];
    const uint8_t* cu = f.planes[1] + static_cast<size_t>(row / 2) * f.strides[1];
    const uint8_t* cv = f.planes[2] + static_cast<size_t>(row / 2) * f.strides[2];
    if (row % 2 == 0) {  // odd rows reuse the even row's chroma
      for (int x = 0; x < w; ++x) u[x] = cu[x >> 1], v[x] = cv[x >> 1];
    }
    yuv_row_to_rgb(c, y, u.data(), v.data(), w, rgb + static_cast<size_t>(row) * w * 3);
  }
}

// ---- NV12: the generic chain with video-chroma.c's upsampling --------------------------------

// One chroma row (interleaved UV, ceil(w/2) pairs) upsampled horizontally to w samples each, as
// video_chroma_up_h2_u8 (3/4-1/4) or video_chroma_up_h2_cs_u8 (average) does on the repeated row.
void upsample_chroma_row(const uint8_t* uv, int width, bool h_cosited, uint8_t* u, uint8_t* v) {
  u[0] = uv[0], v[0] = uv[1];
  int i = 1;
  for (; i < width - 1; i += 2) {
    const int j = i - 1;  // uv[j], uv[j + 1]: the pair left of pixel i; uv[j + 2], uv[j + 3]: right
    const int u0 = uv[j], v0 = uv[j + 1], u1 = uv[j + 2], v1 = uv[j + 3];
    if (h_cosited) {
      u[i] = static_cast<uint8_t>((u0 + u1 + 1) >> 1);
      v[i] = static_cast<uint8_t>((v0 + v1 + 1) >> 1);
      u[i + 1] = static_cast<uint8_t>(u1);
      v[i + 1] = static_cast<uint8_t>(v1);
    } else {
      u[i] = static_cast<uint8_t>((3 * u0 + u1 + 2) >> 2);
      v[i] = static_cast<uint8_t>((3 * v0 + v1 + 2) >> 2);
      u[i + 1] = static_cast<uint8_t>((u0 + 3 * u1 + 2) >> 2);
      v[i + 1] = static_cast<uint8_t>((v0 + 3 * v1 + 2) >> 2);
    }
  }
  if (i == width - 1) {  // even width: the last pixel keeps its own (repeated) sample
    u[i] = uv[i - 1], v[i] = uv[i];
  }
}

// Horizontally upsampled chroma rows; two slots, since an output row needs at most two.
class ChromaRows {
 public:
  struct Row {
    int index = -1;
    std::vector<uint8_t> u, v;
  };
  ChromaRows(const FrameView& f, bool h_cosited) : f_(f), h_cosited_(h_cosited) {
    for (Row& slot : slots_) slot.u.resize(f.width), slot.v.resize(f.width);
  }
  // Rows `a` and `b` (possibly equal), both valid until the next call.
  std::pair<const Row*, const Row*> get(int a, int b) {
    const Row* row_a = fill(a, b);
    const Row* row_b = fill(b, a);
    return {row_a, row_b};
  }

 private:
  const Row* fill(int index, int keep) {
    for (const Row& slot : slots_)
      if (slot.index == index) return &slot;
    Row& slot = slots_[0].index == keep ? slots_[1] : slots_[0];
    slot.index = index;
    upsample_chroma_row(f_.planes[1] + static_cast<size_t>(index) * f_.strides[1], f_.width, h_cosited_, slot.u.data(),
                        slot.v.data());
    return &slot;
  }

  const FrameView& f_;
  bool h_cosited_;
  Row slots_[2];
};

// video_orc_chroma_up_v2_u8: (3a + b + 2) >> 2.
void blend_rows(const uint8_t* near, const uint8_t* far, int width, uint8_t* out) {
  for (int x = 0; x < width; ++x) out[x] = static_cast<uint8_t>((3 * near[x] + far[x] + 2) >> 2);
}

void convert_nv12(const FrameView& f, const YuvCoefficients& c, bool h_cosited, uint8_t* rgb) {
  const int w = f.width, h = f.height;
  ChromaRows chroma(f, h_cosited);
  std::vector<uint8_t> u(w), v(w);
  for (int row = 0; row < h; ++row) {
    const uint8_t* y = f.planes[0] + static_cast<size_t>(row) * f.strides[0];
    uint8_t* out = rgb + static_cast<size_t>(row) * w * 3;
    // Lines are upsampled vertically in pairs (2k-1, 2k), lines outside the frame clamped to its
    // edge: an odd line leans on its own chroma row and the next line's, an even line on the
    // previous line's and its own.
    const int own = row / 2;
    const int other = (row % 2 == 1 ? std::min(row + 1, h - 1) : std::max(row - 1, 0)) / 2;
    const auto [near, far] = chroma.get(own, other);
    const uint8_t *cu = near->u.data(), *cv = near->v.data();
    if (other != own) {
      blend_rows(near->u.data(), far->u.data(), w, u.data());
      blend_rows(near->v.data(), far->v.data(), w, v.data());
      cu = u.data(), cv = v.data();
    }
    yuv_row_to_rgb(c, y, cu, cv, w, out);
  }
}

// ---- RGB family -----------------------------------------------------------------------------

void convert_packed_rgb(const FrameView& f, uint8_t* rgb) {
  const int bpp = rgb_bytes_per_pixel(f.format);
  const bool bgr = f.format == PixelFormat::kBGR || f.format == PixelFormat::kBGRA || f.format == PixelFormat::kBGRx;
  const int r = bgr ? 2 : 0, b = bgr ? 0 : 2;
  const size_t out_row = static_cast<size_t>(f.width) * 3;
  for (int row = 0; row < f.height; ++row) {
    const uint8_t* in = f.planes[0] + static_cast<size_t>(row) * f.strides[0];
    uint8_t* out = rgb + row * out_row;
    if (f.format == PixelFormat::kRGB) {
      std::memcpy(out, in, out_row);
      continue;
    }
    for (int x = 0; x < f.width; ++x, in += bpp, out += 3) {
      out[0] = in[r];
      out[1] = in[1];
      out[2] = in[b];
    }
  }
}

}  // namespace

void validate_frame(const FrameView& frame) {
  if (!is_known_format(frame.format))
    throw Error(fmt::format("frame: unknown pixel format {}", static_cast<int>(frame.format)));
  if (frame.width <= 0 || frame.height <= 0)
    throw Error(fmt::format("{}: width and height must be positive", describe(frame)));
  // Keeps the byte count of a row far inside int (strides are int).
  constexpr int kMaxSide = 1 << 16;
  if (frame.width > kMaxSide || frame.height > kMaxSide)
    throw Error(fmt::format("{}: larger than {} pixels on a side", describe(frame), kMaxSide));
  if (frame.yuv_matrix != YuvMatrix::kAuto && frame.yuv_matrix != YuvMatrix::kBT601 &&
      frame.yuv_matrix != YuvMatrix::kBT709 && frame.yuv_matrix != YuvMatrix::kBT2020)
    throw Error(fmt::format("{}: unknown YUV matrix {}", describe(frame), static_cast<int>(frame.yuv_matrix)));
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  for (int i = 0; i < geometry.count; ++i) {
    if (frame.planes[i] == nullptr)
      throw Error(fmt::format("{}: plane {} ({}) is null", describe(frame), i, geometry.names[i]));
    if (frame.strides[i] < geometry.row_bytes[i])
      throw Error(fmt::format("{}: plane {} ({}) stride {} is smaller than its row of {} bytes", describe(frame), i,
                              geometry.names[i], frame.strides[i], geometry.row_bytes[i]));
  }
}

FrameView OwnedFrame::view() const {
  FrameView view = layout;
  const PlaneGeometry geometry = plane_geometry(layout.format, layout.width, layout.height);
  for (int i = 0; i < 3; ++i) view.planes[i] = i < geometry.count ? bytes.data() + plane_offsets[i] : nullptr;
  return view;
}

OwnedFrame copy_frame(const FrameView& frame) {
  validate_frame(frame);
  const PlaneGeometry geometry = plane_geometry(frame.format, frame.width, frame.height);
  OwnedFrame owned;
  owned.layout = frame;
  size_t total = 0;
  for (int i = 0; i < geometry.count; ++i) {
    owned.plane_offsets[i] = total;
    total += static_cast<size_t>(geometry.row_bytes[i] * geometry.rows[i]);
  }
  owned.bytes.resize(total);
  for (int i = 0; i < 3; ++i) {
    owned.layout.planes[i] = nullptr;
    owned.layout.strides[i] = i < geometry.count ? static_cast<int>(geometry.row_bytes[i]) : 0;
  }
  for (int i = 0; i < geometry.count; ++i) {
    const size_t row_bytes = static_cast<size_t>(geometry.row_bytes[i]);
    uint8_t* out = owned.bytes.data() + owned.plane_offsets[i];
    for (int64_t row = 0; row < geometry.rows[i]; ++row)
      std::memcpy(out + row * row_bytes, frame.planes[i] + row * frame.strides[i], row_bytes);
  }
  return owned;
}

RgbFrame convert_to_rgb(const FrameView& frame) {
  validate_frame(frame);
  RgbFrame result;
  result.width = frame.width;
  result.height = frame.height;
  result.timestamp_s = frame.timestamp_s;
  result.rgb.resize(static_cast<size_t>(frame.width) * frame.height * 3);
  if (!is_yuv(frame.format)) {
    convert_packed_rgb(frame, result.rgb.data());
    return result;
  }
  const kernels::VideoconvertYuv yuv = kernels::videoconvert_yuv(frame.yuv_matrix, frame.yuv_full_range, frame.height);
  if (frame.format == PixelFormat::kI420)
    convert_i420(frame, yuv.coefficients, result.rgb.data());
  else
    convert_nv12(frame, yuv.coefficients, yuv.chroma_h_cosited, result.rgb.data());
  return result;
}

}  // namespace qwenvl::model
