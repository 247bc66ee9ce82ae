#include "preprocessing/patchify.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "qwenvl/error.h"

namespace qwenvl::model {

namespace {

at::Tensor float3(const std::vector<double>& values) {
  at::Tensor t = at::empty({3}, at::kFloat);
  // torch.tensor([python floats]) rounds each double to the nearest float32.
  for (int64_t i = 0; i < 3; ++i) t.data_ptr<float>()[i] = static_cast<float>(values[i]);
  return t.view({-1, 1, 1});
}

}  // namespace

PixelTable make_pixel_table(const ProcessorConfig& config) {
  if (config.image_mean.size() != 3 || config.image_std.size() != 3)
    throw Error(fmt::format("processor config: image_mean and image_std need 3 values (RGB), got {} and {}",
                            config.image_mean.size(), config.image_std.size()));
  for (double s : config.image_std)
    if (s == 0.0) throw Error("processor config: image_std has a zero entry (division by zero)");
  if (config.do_rescale && config.rescale_factor == 0.0)
    throw Error("processor config: rescale_factor is 0");

  // Every uint8 level once per channel, shaped like an image [C, 1, 256].
  const at::Tensor levels = at::arange(256, at::kByte).view({1, 1, 256}).expand({3, 1, 256}).contiguous();
  at::Tensor out;
  // The branches mirror TorchvisionBackend.rescale_and_normalize and torchvision normalize_image.
  if (config.do_rescale && config.do_normalize) {
    const at::Tensor mean = float3(config.image_mean).mul(1.0 / config.rescale_factor);
    const at::Tensor std = float3(config.image_std).mul(1.0 / config.rescale_factor);
    out = levels.to(at::kFloat).sub(mean).div_(std);
  } else if (config.do_normalize) {
    out = levels.to(at::kFloat).sub(float3(config.image_mean)).div_(float3(config.image_std));
  } else if (config.do_rescale) {
    out = levels.mul(config.rescale_factor);  // uint8 * python float -> float32, as `image * scale`
  } else {
    out = levels.to(at::kFloat);  // transformers would keep uint8; the values are the same
  }
  out = out.to(at::kFloat).contiguous();
  PixelTable table;
  std::memcpy(table.values.data(), out.data_ptr<float>(), sizeof(float) * table.values.size());
  return table;
}

at::Tensor patchify(const std::vector<at::Tensor>& frames, const PixelTable& table, const ProcessorConfig& config,
                    std::array<int64_t, 3>& grid_thw) {
  const int64_t P = config.patch_size, M = config.merge_size, T = config.temporal_patch_size;
  if (P <= 0 || M <= 0 || T <= 0)
    throw Error(fmt::format("processor config: patch_size {}, merge_size {}, temporal_patch_size {} must be positive",
                            P, M, T));
  if (frames.empty()) throw Error("patchify: no frames");
  const int64_t C = 3, H = frames[0].size(2), W = frames[0].size(3);
  if (H % (P * M) != 0 || W % (P * M) != 0)
    throw Error(fmt::format("patchify: frame size {}x{} (height x width) is not a multiple of patch_size * "
                            "merge_size = {} (is do_resize off?)",
                            H, W, P * M));
  std::vector<const uint8_t*> base;
  base.reserve(frames.size());
  for (const at::Tensor& f : frames) {
    if (f.scalar_type() != at::kByte || f.dim() != 4 || f.size(0) != 1 || f.size(1) != C || f.size(2) != H ||
        f.size(3) != W || f.strides() != frames[0].strides())
      throw Error("patchify: frames must be [1, 3, H, W] uint8 tensors of one size and layout");
    base.push_back(f.data_ptr<uint8_t>());
  }
  const int64_t sc = frames[0].stride(1), sy = frames[0].stride(2), sx = frames[0].stride(3);
  const int64_t n = static_cast<int64_t>(frames.size());
  const int64_t gt = (n + T - 1) / T, gh = H / P, gw = W / P, mh = gh / M, mw = gw / M;
  const int64_t cols = C * T * P * P, block = P * P;
  at::Tensor out = at::empty({gt * gh * gw, cols}, at::kFloat);
  float* const dst = out.data_ptr<float>();

  // One merge group (M x M patches, consecutive rows) per work item: ((t * mh + bh) * mw + bw).
  at::parallel_for(0, gt * mh * mw, 16, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const int64_t t = g / (mh * mw), bh = (g / mw) % mh, bw = g % mw;
      for (int64_t mr = 0; mr < M; ++mr) {
        for (int64_t mc = 0; mc < M; ++mc) {
          float* o = dst + (g * M * M + mr * M + mc) * cols;
          const int64_t y0 = (bh * M + mr) * P, x0 = (bw * M + mc) * P;
          for (int64_t c = 0; c < C; ++c) {
            const float* lut = table.channel(c);
            for (int64_t f = 0; f < T; ++f, o += block) {
              const int64_t frame = std::min(t * T + f, n - 1);  // padding repeats the last frame
              if (f > 0 && frame == std::min(t * T + f - 1, n - 1)) {
                std::memcpy(o, o - block, sizeof(float) * block);
                continue;
              }
              const uint8_t* src = base[frame] + c * sc + y0 * sy + x0 * sx;
              float* row = o;
              for (int64_t py = 0; py < P; ++py, src += sy)
                for (int64_t px = 0; px < P; ++px) *row++ = lut[src[px * sx]];
            }
          }
        }
      }
    }
  });
  grid_thw = {gt, gh, gw};
  return out;
}

}  // namespace qwenvl::model
