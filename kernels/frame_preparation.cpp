// frame preparation: entry points, argument checks, the int16 resampling weights, and the CPU
// reference path (the conversion through frame_preparation_math.h, ATen's own uint8 antialiased
// bicubic, and transformers' view/permute patchify).
#include "kernels/frame_preparation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#include "kernels/frame_preparation_math.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/frame_preparation_cuda.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "frame_preparation";
constexpr int64_t kMaxSide = 1 << 16;  // as the engine's frame validation

namespace fm = frame_math;

// ---- frames: layout checks and the arguments of the per-pixel functions ---------------------

bool known_format(PixelFormat format) {
  for (const PixelFormatName& entry : kPixelFormatNames)
    if (entry.format == format) return true;
  return false;
}

std::string describe(const FrameLayout& f, size_t index) {
  return "frame " + std::to_string(index) + " (" + std::to_string(f.width) + "x" + std::to_string(f.height) + " " +
         pixel_format_name(f.format) + ")";
}

void check_bytes(const at::Tensor& bytes) {
  if (!bytes.defined() || bytes.scalar_type() != at::kByte || bytes.dim() != 1 || !bytes.is_contiguous())
    detail::fail(kOp, "bytes must be a contiguous 1-d uint8 tensor, got ",
                 bytes.defined() ? std::string(c10::toString(bytes.scalar_type())) : std::string("an undefined tensor"),
                 bytes.defined() ? " of shape " : "", bytes.defined() ? bytes.sizes() : at::IntArrayRef{});
}

// Checks every frame against the buffer and returns what the per-pixel functions read.
std::vector<fm::FrameArgs> frame_args(const at::Tensor& bytes, const std::vector<FrameLayout>& frames) {
  check_bytes(bytes);
  if (frames.empty()) detail::fail(kOp, "no frames");
  const int64_t size = bytes.numel();
  const uint8_t* base = bytes.data_ptr<uint8_t>();
  std::vector<fm::FrameArgs> args;
  for (size_t i = 0; i < frames.size(); ++i) {
    const FrameLayout& f = frames[i];
    if (!known_format(f.format)) detail::fail(kOp, "frame ", i, ": unknown pixel format ", static_cast<int>(f.format));
    if (f.width <= 0 || f.height <= 0 || f.width > kMaxSide || f.height > kMaxSide)
      detail::fail(kOp, describe(f, i), ": each side must be 1 to ", kMaxSide, " pixels");
    if (f.width != frames[0].width || f.height != frames[0].height)
      detail::fail(kOp, describe(f, i), ": all frames of one call must have frame 0's size ", frames[0].width, "x",
                   frames[0].height);
    if (f.yuv_matrix != YuvMatrix::kAuto && f.yuv_matrix != YuvMatrix::kBT601 && f.yuv_matrix != YuvMatrix::kBT709 &&
        f.yuv_matrix != YuvMatrix::kBT2020)
      detail::fail(kOp, describe(f, i), ": unknown YUV matrix ", static_cast<int>(f.yuv_matrix));
    const PlaneGeometry g = plane_geometry(f.format, f.width, f.height);
    fm::FrameArgs a;
    a.format = static_cast<int>(f.format);
    a.width = static_cast<int>(f.width);
    a.height = static_cast<int>(f.height);
    for (int p = 0; p < g.count; ++p) {
      const int64_t offset = f.plane_offsets[p], stride = f.strides[p];
      if (stride < g.row_bytes[p])
        detail::fail(kOp, describe(f, i), ": plane ", p, " stride ", stride, " is smaller than its row of ",
                     g.row_bytes[p], " bytes");
      if (offset < 0 || offset + (g.rows[p] - 1) * stride + g.row_bytes[p] > size)
        detail::fail(kOp, describe(f, i), ": plane ", p, " (offset ", offset, ", ", g.rows[p], " rows of stride ",
                     stride, ") does not fit in the buffer of ", size, " bytes");
      a.planes[p] = base + offset;
      a.strides[p] = stride;
    }
    const VideoconvertYuv yuv = videoconvert_yuv(f.yuv_matrix, f.yuv_full_range, f.height);
    a.chroma_h_cosited = yuv.chroma_h_cosited;
    a.coefficients = yuv.coefficients;
    args.push_back(a);
  }
  return args;
}

void check_rgb(const at::Tensor& rgb, const char* name) {
  if (!rgb.defined() || rgb.scalar_type() != at::kByte || rgb.dim() != 4 || rgb.size(3) != 3 || !rgb.is_contiguous() ||
      rgb.size(0) < 1 || rgb.size(1) < 1 || rgb.size(2) < 1)
    detail::fail(kOp, name, " must be a contiguous uint8 [N, H, W, 3] tensor with N, H, W >= 1, got ",
                 rgb.defined() ? rgb.sizes() : at::IntArrayRef{});
}

void check_target(int64_t height, int64_t width) {
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide)
    detail::fail(kOp, "target size ", width, "x", height, " (width x height): each side must be 1 to ", kMaxSide);
}

void check_patch_shape(const at::Tensor& rgb, const at::Tensor& level_values, const PatchShape& s) {
  if (s.patch_size <= 0 || s.temporal_patch_size <= 0 || s.merge_size <= 0)
    detail::fail(kOp, "patch_size ", s.patch_size, ", temporal_patch_size ", s.temporal_patch_size, ", merge_size ",
                 s.merge_size, " must be positive");
  const int64_t unit = s.patch_size * s.merge_size;
  if (rgb.size(1) % unit != 0 || rgb.size(2) % unit != 0)
    detail::fail(kOp, "frame size ", rgb.size(2), "x", rgb.size(1), " (width x height) is not a multiple of patch_size * "
                 "merge_size = ", unit);
  if (!level_values.defined() || level_values.scalar_type() != at::kFloat || level_values.dim() != 2 ||
      level_values.size(0) != 3 || level_values.size(1) != 256)
    detail::fail(kOp, "level_values must be a float32 [3, 256] tensor (each channel's value of every uint8 level), got ",
                 level_values.defined() ? level_values.sizes() : at::IntArrayRef{});
}

void count(bool cuda) {
  detail::count_dispatch(KernelOp::kFramePreparation, cuda ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
}

// ---- resampling weights: ATen's HelperInterpCubic with antialias, in double -----------------

double cubic_aa_filter(double x) {  // a = -0.5 (PIL's bicubic), cubic_convolution1 / 2 of UpSample.h
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

}  // namespace

ResampleWeights bicubic_aa_weights(int64_t in_size, int64_t out_size) {
  if (in_size < 1 || out_size < 1) detail::fail(kOp, "resampling ", in_size, " to ", out_size, " samples");
  // area_pixel_compute_scale without scale factors, then _compute_index_ranges_weights (antialias).
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  constexpr int kInterpSize = 4;
  const double support = scale >= 1.0 ? (kInterpSize * 0.5) * scale : kInterpSize * 0.5;
  const int64_t taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  ResampleWeights r;
  r.taps = taps;
  r.first.resize(out_size);
  r.count.resize(out_size);
  std::vector<double> weights(static_cast<size_t>(out_size * taps), 0.0);
  double wt_max = 0.0;
  for (int64_t i = 0; i < out_size; ++i) {  // _compute_indices_min_size_weights_aa
    double* w = weights.data() + i * taps;
    const double center = scale * (i + 0.5);
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), int64_t{0});
    int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), in_size) - xmin;
    xsize = std::clamp(xsize, int64_t{0}, taps);
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j) {
      w[j] = cubic_aa_filter((j + xmin - center + 0.5) * invscale);
      total += w[j];
    }
    double row_max = 0.0;
    if (total != 0.0) {
      for (int64_t j = 0; j < xsize; ++j) {
        w[j] /= total;
        row_max = std::max(row_max, w[j]);
      }
    }
    wt_max = std::max(wt_max, row_max);
    r.first[i] = static_cast<int32_t>(xmin);
    r.count[i] = static_cast<int32_t>(xsize);
  }
  // _compute_index_ranges_int16_weights: the most fractional bits that keep 2 * wt_max in int16.
  unsigned int precision = 0;
  for (precision = 0; precision < 22; ++precision) {
    const int next_value = static_cast<int>(0.5 + wt_max * (1 << (precision + 1)));
    if (next_value >= (1 << 15)) break;
  }
  if (precision == 0) detail::fail(kOp, "resampling ", in_size, " to ", out_size, " leaves no fractional weight bits");
  r.precision = static_cast<int>(precision);
  r.weights.resize(weights.size());
  for (size_t k = 0; k < weights.size(); ++k) {
    const double v = weights[k] * (1 << precision);
    r.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return r;
}

at::Tensor frames_to_rgb(const at::Tensor& bytes, const std::vector<FrameLayout>& frames) {
  const std::vector<fm::FrameArgs> args = frame_args(bytes, frames);
  const int64_t n = static_cast<int64_t>(frames.size()), h = frames[0].height, w = frames[0].width;
  at::Tensor rgb = at::empty({n, h, w, 3}, bytes.options());
  count(bytes.is_cuda());
  if (bytes.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    cuda::frames_to_rgb(args, rgb);
    return rgb;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  if (!bytes.device().is_cpu()) detail::fail(kOp, "bytes are on ", bytes.device(), "; only CPU and CUDA are served");
  uint8_t* out = rgb.data_ptr<uint8_t>();
  for (int64_t f = 0; f < n; ++f)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        fm::pixel_to_rgb(args[f], static_cast<int>(x), static_cast<int>(y), out + ((f * h + y) * w + x) * 3);
  return rgb;
}

at::Tensor resize_bicubic_aa(const at::Tensor& rgb, int64_t height, int64_t width) {
  check_rgb(rgb, "rgb");
  check_target(height, width);
  if (rgb.size(1) == height && rgb.size(2) == width) return rgb;
  count(rgb.is_cuda());
  if (rgb.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    at::Tensor out = at::empty({rgb.size(0), height, width, 3}, rgb.options());
    cuda::resize_bicubic_aa(rgb, out);
    return out;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  // torchvision's resize(BICUBIC, antialias=True) on uint8: ATen's own kernel, channels-last.
  const std::array<int64_t, 2> size{height, width};
  const at::Tensor nchw = rgb.permute({0, 3, 1, 2});
  return at::_upsample_bicubic2d_aa(nchw, at::OptionalIntArrayRef(size), /*align_corners=*/false, std::nullopt)
      .permute({0, 2, 3, 1})
      .contiguous();
}

at::Tensor resize_bicubic_aa_fixed_point_on_host(const at::Tensor& rgb, int64_t height, int64_t width) {
  check_rgb(rgb, "rgb");
  check_target(height, width);
  if (!rgb.device().is_cpu()) detail::fail(kOp, "the host emulation takes a CPU tensor");
  at::Tensor cur = rgb;
  const int64_t n = rgb.size(0);
  if (cur.size(2) != width) {  // horizontal pass: taps 3 bytes apart along the row
    const int64_t h = cur.size(1), w_in = cur.size(2);
    const ResampleWeights r = bicubic_aa_weights(w_in, width);
    at::Tensor out = at::empty({n, h, width, 3}, rgb.options());
    const uint8_t* src = cur.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    for (int64_t row = 0; row < n * h; ++row)
      for (int64_t x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c)
          dst[(row * width + x) * 3 + c] = fm::resample_taps(src + (row * w_in + r.first[x]) * 3 + c, 3,
                                                             r.weights.data() + x * r.taps, r.count[x], r.precision);
    cur = out;
  }
  if (cur.size(1) != height) {  // vertical pass: taps one row apart
    const int64_t h_in = cur.size(1), w = cur.size(2);
    const ResampleWeights r = bicubic_aa_weights(h_in, height);
    at::Tensor out = at::empty({n, height, w, 3}, rgb.options());
    const uint8_t* src = cur.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    for (int64_t f = 0; f < n; ++f)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t e = 0; e < w * 3; ++e)
          dst[(f * height + y) * w * 3 + e] = fm::resample_taps(src + (f * h_in + r.first[y]) * w * 3 + e, w * 3,
                                                                r.weights.data() + y * r.taps, r.count[y], r.precision);
    cur = out;
  }
  return cur;
}

at::Tensor patchify_levels(const at::Tensor& rgb, const at::Tensor& level_values, const PatchShape& s) {
  check_rgb(rgb, "rgb");
  check_patch_shape(rgb, level_values, s);
  const int64_t n = rgb.size(0), H = rgb.size(1), W = rgb.size(2);
  const int64_t P = s.patch_size, T = s.temporal_patch_size, M = s.merge_size;
  const int64_t gt = (n + T - 1) / T, gh = H / P, gw = W / P;
  count(rgb.is_cuda());
  if (rgb.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    const at::Tensor table = level_values.to(rgb.device(), at::kFloat).contiguous().view({-1});
    at::Tensor out = at::empty({gt * gh * gw, 3 * T * P * P}, rgb.options().dtype(at::kFloat));
    cuda::patchify_levels(rgb, table, P, T, M, out);
    return out;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  // Each pixel's value from its channel's table, then transformers' patchify (Qwen2VLImageProcessor:
  // frames padded with the last one, view, permute(0, 3, 6, 4, 7, 2, 1, 5, 8), flatten).
  const at::Tensor table = level_values.to(at::kCPU).contiguous().view({-1});
  const at::Tensor index = rgb.to(at::kLong) + at::arange(3, at::kLong).mul(256);
  at::Tensor values = table.take(index).permute({0, 3, 1, 2});  // [N, 3, H, W]
  if (gt * T > n) values = at::cat({values, values.narrow(0, n - 1, 1).expand({gt * T - n, 3, H, W})});
  return values.contiguous()
      .view({gt, T, 3, gh / M, M, P, gw / M, M, P})
      .permute({0, 3, 6, 4, 7, 2, 1, 5, 8})
      .reshape({gt * gh * gw, 3 * T * P * P})
      .contiguous();
}

at::Tensor prepare_frames(const at::Tensor& bytes, const std::vector<FrameLayout>& frames, int64_t height,
                          int64_t width, const at::Tensor& level_values, const PatchShape& shape) {
  check_target(height, width);
  const int64_t unit = shape.patch_size * shape.merge_size;
  if (unit > 0 && (height % unit != 0 || width % unit != 0))  // before any work is queued
    detail::fail(kOp, "target size ", width, "x", height, " (width x height) is not a multiple of patch_size * "
                 "merge_size = ", unit);
  // A long clip of large frames would hold every frame at full size in RGB at once: convert and
  // resample a few frames at a time into the (smaller) resampled clip.
  constexpr size_t kChunk = 8;
  if (frames.size() <= kChunk) return patchify_levels(resize_bicubic_aa(frames_to_rgb(bytes, frames), height, width),
                                                      level_values, shape);
  at::Tensor resized = at::empty({static_cast<int64_t>(frames.size()), height, width, 3}, bytes.options());
  for (size_t first = 0; first < frames.size(); first += kChunk) {
    const size_t n = std::min(kChunk, frames.size() - first);
    const std::vector<FrameLayout> chunk(frames.begin() + first, frames.begin() + first + n);
    resized.narrow(0, static_cast<int64_t>(first), static_cast<int64_t>(n))
        .copy_(resize_bicubic_aa(frames_to_rgb(bytes, chunk), height, width));
  }
  return patchify_levels(resized, level_values, shape);
}

}  // namespace qwenvl::kernels
