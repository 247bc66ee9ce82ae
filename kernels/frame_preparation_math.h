// The per-pixel arithmetic of frame preparation, compiled for both the host (the CPU reference of
// frame_preparation.cpp and the tests) and the device (frame_preparation.cu), so that both run the
// same integer operations:
// - YUV to RGB as GStreamer 1.22's videoconvert computes it with default properties, from
//   gst-plugins-base 1.22 video-converter.c, video-chroma.c and video-orc.orc. I420 takes the
//   fastpath convert_I420_pack_ARGB: each chroma sample repeated for its 2x2 pixels. NV12 has no
//   fastpath: unpacked to AYUV (chroma repeated), then chroma upsampled by video-chroma.c,
//   horizontally a 3/4-1/4 filter (or, for an H_COSITED chroma site, the average of the two
//   neighbours), vertically a 3/4-1/4 filter on line pairs (2k-1, 2k). Both then apply orc's
//   arithmetic: bytes minus 128 as signed, widened by splatting ((s << 8) | (s & 0xff)), 8.8
//   fixed-point products keeping the high 16 bits, an int16 sum that wraps, saturation to a signed
//   byte, plus 128. Range offsets are not applied there, so limited-range Y is centred on 128, not
//   16 (Y=235 gives 253): reproduced, since the point is identical pixels
//   (tests/preprocessing/test_frame_convert.cpp holds it to videoconvert itself);
// - one output sample of ATen's uint8 antialiased resampling: int16 weights, an int32 sum that
//   starts at half an output step, an arithmetic shift by the weights' precision, clamped to 0..255.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define QWENVL_HD __host__ __device__ __forceinline__
#else
#define QWENVL_HD inline
#endif

namespace qwenvl::kernels::frame_math {

// qwenvl::PixelFormat's values, as the kernels take them.
enum Format : int { kRGB = 0, kRGBA, kRGBx, kBGR, kBGRA, kBGRx, kNV12, kI420 };

// The five 8.8 fixed-point coefficients of videoconvert's orc YUV -> RGB functions.
struct YuvCoefficients {
  int16_t y = 0, v_to_r = 0, u_to_b = 0, u_to_g = 0, v_to_g = 0;
};

// One frame as the per-pixel functions read it: plane pointers (host or device memory) and strides.
struct FrameArgs {
  int format = kRGB;
  int width = 0, height = 0;
  const uint8_t* planes[3] = {nullptr, nullptr, nullptr};
  int64_t strides[3] = {0, 0, 0};
  YuvCoefficients coefficients;
  bool chroma_h_cosited = false;  // NV12 horizontal upsampling: average of neighbours, else 3/4-1/4
};

// orc: subb 128 then splatbw: the signed byte s = b - 128 widened as (s << 8) | (s & 0xff).
QWENVL_HD int16_t splat_signed(uint8_t b) {
  const uint16_t s = static_cast<uint8_t>(b ^ 0x80);
  return static_cast<int16_t>(static_cast<uint16_t>((s << 8) | s));
}
QWENVL_HD int16_t mulhsw(int16_t a, int16_t b) { return static_cast<int16_t>((int32_t{a} * b) >> 16); }
// orc: convssswb, then addb 128.
QWENVL_HD uint8_t saturate_plus_128(int16_t sum) {
  const int s = sum < -128 ? -128 : (sum > 127 ? 127 : sum);
  return static_cast<uint8_t>(s + 128);
}

QWENVL_HD void yuv_to_rgb(const YuvCoefficients& c, uint8_t y, uint8_t u, uint8_t v, uint8_t* rgb) {
  const int16_t ly = mulhsw(splat_signed(y), c.y);
  const int16_t su = splat_signed(u), sv = splat_signed(v);
  rgb[0] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(sv, c.v_to_r)));
  rgb[1] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(su, c.u_to_g) + mulhsw(sv, c.v_to_g)));
  rgb[2] = saturate_plus_128(static_cast<int16_t>(ly + mulhsw(su, c.u_to_b)));
}

// Pixel x's chroma component (0: U, 1: V) of an NV12 chroma row (interleaved pairs, one per two
// pixels), upsampled horizontally as video_chroma_up_h2_u8 (3/4-1/4) or, for H-cosited chroma,
// video_chroma_up_h2_cs_u8 (average) does it on the repeated row: pixel 0 and the last pixel of an
// even width keep their own sample.
QWENVL_HD uint8_t nv12_chroma_h(const uint8_t* uv, int x, int width, bool h_cosited, int component) {
  if (x == 0) return uv[component];
  if (x % 2 == 1) {
    const int a = uv[2 * ((x - 1) / 2) + component];
    if (x == width - 1) return static_cast<uint8_t>(a);
    const int b = uv[2 * ((x + 1) / 2) + component];
    return static_cast<uint8_t>(h_cosited ? (a + b + 1) >> 1 : (3 * a + b + 2) >> 2);
  }
  const int a = uv[2 * (x / 2 - 1) + component], b = uv[2 * (x / 2) + component];
  return static_cast<uint8_t>(h_cosited ? b : (a + 3 * b + 2) >> 2);
}

// NV12 chroma at (x, row): lines are upsampled vertically in pairs (2k-1, 2k) with
// video_orc_chroma_up_v2_u8 ((3 near + far + 2) >> 2), rows outside the frame clamped to its edge.
QWENVL_HD uint8_t nv12_chroma(const FrameArgs& f, int x, int row, int component) {
  const int own = row / 2;
  const int neighbour = row % 2 == 1 ? (row + 1 < f.height ? row + 1 : f.height - 1) : (row > 0 ? row - 1 : 0);
  const int other = neighbour / 2;
  const uint8_t near = nv12_chroma_h(f.planes[1] + own * f.strides[1], x, f.width, f.chroma_h_cosited, component);
  if (other == own) return near;
  const uint8_t far = nv12_chroma_h(f.planes[1] + other * f.strides[1], x, f.width, f.chroma_h_cosited, component);
  return static_cast<uint8_t>((3 * near + far + 2) >> 2);
}

// The RGB bytes of pixel (x, row), as videoconvert's output holds them.
QWENVL_HD void pixel_to_rgb(const FrameArgs& f, int x, int row, uint8_t* rgb) {
  const uint8_t* line = f.planes[0] + row * f.strides[0];
  switch (f.format) {
    case kRGB: rgb[0] = line[3 * x], rgb[1] = line[3 * x + 1], rgb[2] = line[3 * x + 2]; return;
    case kBGR: rgb[0] = line[3 * x + 2], rgb[1] = line[3 * x + 1], rgb[2] = line[3 * x]; return;
    case kRGBA:
    case kRGBx: rgb[0] = line[4 * x], rgb[1] = line[4 * x + 1], rgb[2] = line[4 * x + 2]; return;
    case kBGRA:
    case kBGRx: rgb[0] = line[4 * x + 2], rgb[1] = line[4 * x + 1], rgb[2] = line[4 * x]; return;
    case kI420: {
      const uint8_t u = f.planes[1][(row / 2) * f.strides[1] + (x >> 1)];
      const uint8_t v = f.planes[2][(row / 2) * f.strides[2] + (x >> 1)];
      yuv_to_rgb(f.coefficients, line[x], u, v, rgb);
      return;
    }
    default:  // kNV12
      yuv_to_rgb(f.coefficients, line[x], nv12_chroma(f, x, row, 0), nv12_chroma(f, x, row, 1), rgb);
      return;
  }
}

// One output sample of ATen's uint8 antialiased resampling (basic_loop_aa_{horizontal,vertical}
// <uint8_t> and the AVX2 ImagingResample* functions compute the same integers): `count` taps `step`
// bytes apart, int16 weights with `precision` fractional bits.
QWENVL_HD uint8_t resample_taps(const uint8_t* src, int64_t step, const int16_t* weights, int count, int precision) {
  int32_t acc = int32_t{1} << (precision - 1);
  for (int k = 0; k < count; ++k) acc += int32_t{src[k * step]} * weights[k];
  acc >>= precision;  // arithmetic: a negative sum floors, then clamps to 0
  return static_cast<uint8_t>(acc < 0 ? 0 : (acc > 255 ? 255 : acc));
}

}  // namespace qwenvl::kernels::frame_math
