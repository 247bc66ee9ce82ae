// Frame preparation for a vision tower, on the CPU (reference) or a CUDA device (kernels), with the
// same bytes on both: frames in the pixel formats of qwenvl/engine.h to RGB as GStreamer 1.22's
// videoconvert makes them, ATen's uint8 antialiased bicubic resize (torchvision's resize of a uint8
// tensor; fixed-point, reproduced exactly on the GPU), a per-channel table from each uint8 level to
// its value (rescale and normalise folded in by the caller), and the patchify into rows of
// channels * temporal_patch * patch^2 values with merge groups together (transformers' order).
//
// The steps, each an op of its own (the device harness checks each), and prepare_frames, all of them:
//   bytes --frames_to_rgb--> uint8 [N, H, W, 3] --resize_bicubic_aa--> [N, h, w, 3]
//         --patchify_levels--> float32 [ceil(N / T) * h/P * w/P, 3 * T * P * P]
// A clip of N frames fills ceil(N / T) temporal patches, the last padded by repeating the last
// frame; an image is a clip of one frame. Every tensor stays on the device of `bytes`.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <vector>

#include "kernels/frame_preparation_math.h"
#include "kernels/videoconvert_yuv.h"
#include "qwenvl/pixel_format.h"

namespace qwenvl::kernels {

// Where one frame's planes lie in a byte buffer, and how to read them. Planes as in
// qwenvl::FrameView: RGB family 1; NV12 2 (Y, interleaved UV); I420 3 (Y, U, V); chroma planes of
// 4:2:0 formats are ceil(width / 2) x ceil(height / 2) samples.
struct FrameLayout {
  PixelFormat format = PixelFormat::kRGB;
  int64_t width = 0;
  int64_t height = 0;
  std::array<int64_t, 3> plane_offsets{};  // byte offset of each plane in the buffer
  std::array<int64_t, 3> strides{};        // bytes from one row of a plane to the next
  YuvMatrix yuv_matrix = YuvMatrix::kAuto; // kAuto: GStreamer's default for the height
  bool yuv_full_range = false;
};

// The patch grid: patch_size P, temporal_patch_size T, merge_size M; the frame's sides must be
// multiples of P * M.
struct PatchShape {
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;
};

// bytes: a contiguous 1-D uint8 tensor (CPU or CUDA) holding every frame's planes. All frames of
// one call share width and height. Returns uint8 [N, H, W, 3], contiguous.
at::Tensor frames_to_rgb(const at::Tensor& bytes, const std::vector<FrameLayout>& frames);

// rgb: uint8 [N, H, W, 3], contiguous. Resizes to height x width as
// at::_upsample_bicubic2d_aa(align_corners=false, no scale factors) on a uint8 CPU tensor: a
// horizontal pass then a vertical pass, each skipped when its side keeps its size, with uint8
// between them. Returns rgb itself when the size is unchanged.
at::Tensor resize_bicubic_aa(const at::Tensor& rgb, int64_t height, int64_t width);

// rgb: uint8 [N, H, W, 3] contiguous; level_values: float32 [3, 256] (any device), the output value
// of each uint8 level per channel. Returns float32 [ceil(N / T) * (H / P) * (W / P), 3 * T * P * P].
at::Tensor patchify_levels(const at::Tensor& rgb, const at::Tensor& level_values, const PatchShape& shape);

// The three steps; height x width is the target size (the frames' own size: no resampling).
at::Tensor prepare_frames(const at::Tensor& bytes, const std::vector<FrameLayout>& frames, int64_t height,
                          int64_t width, const at::Tensor& level_values, const PatchShape& shape);

// ATen's int16 weights for resampling one side from in_size to out_size samples (HelperInterpCubic
// with antialias, a = -0.5, computed in double then rounded as _compute_index_ranges_int16_weights
// does). Exposed for the tests.
struct ResampleWeights {
  int64_t taps = 0;             // weights per output sample (ATen's max_interp_size)
  int precision = 0;            // fractional bits of the int16 weights
  std::vector<int32_t> first;   // per output sample: first input sample
  std::vector<int32_t> count;   // per output sample: input samples used (<= taps)
  std::vector<int16_t> weights; // [out_size, taps], zero past count
};
ResampleWeights bicubic_aa_weights(int64_t in_size, int64_t out_size);

// The fixed-point resize of the CUDA kernels run on the host with the same per-sample function
// (resize_bicubic_aa's CPU path calls ATen itself): lets the tests compare the GPU's arithmetic
// with ATen's on machines without a GPU. rgb: uint8 [N, H, W, 3] CPU, contiguous.
at::Tensor resize_bicubic_aa_fixed_point_on_host(const at::Tensor& rgb, int64_t height, int64_t width);

}  // namespace qwenvl::kernels
