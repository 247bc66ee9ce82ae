// change-threshold's measure alone (gst-plugin/frame_change.cpp): luma thumbnails of every pixel
// format the element takes, with padded rows, odd and tiny sizes, and their difference.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "frame_change.h"

namespace qwenvl::gst {
namespace {

struct Rgb {
  int r, g, b;
};
using Picture = std::function<Rgb(int x, int y)>;

double bt601(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; }

// A frame of `format` whose pixel (x, y) is picture(x, y) (for NV12/I420: Y = picture(x, y).r),
// each row followed by `padding` bytes of 0xFF; alpha and chroma hold bytes that must not count.
struct Frame {
  PixelFormat format;
  int width, height;
  std::vector<uint8_t> bytes;
  size_t offsets[3] = {0, 0, 0};
  int strides[3] = {0, 0, 0};

  Frame(PixelFormat f, int w, int h, int padding, const Picture& picture) : format(f), width(w), height(h) {
    const PlaneGeometry g = plane_geometry(f, w, h);
    size_t size = 0;
    for (int p = 0; p < g.count; ++p) {
      offsets[p] = size;
      strides[p] = static_cast<int>(g.row_bytes[p]) + padding;
      size += static_cast<size_t>(strides[p]) * static_cast<size_t>(g.rows[p]);
    }
    bytes.assign(size, 0xFF);
    for (int p = 1; p < g.count; ++p)  // chroma: anything
      for (int64_t y = 0; y < g.rows[p]; ++y)
        for (int64_t x = 0; x < g.row_bytes[p]; ++x) bytes[offsets[p] + y * strides[p] + x] = static_cast<uint8_t>(x * 31 + y * 17);
    const int bpp = is_yuv(f) ? 1 : rgb_bytes_per_pixel(f);
    const bool bgr = f == PixelFormat::kBGR || f == PixelFormat::kBGRA || f == PixelFormat::kBGRx;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        uint8_t* px = bytes.data() + offsets[0] + static_cast<size_t>(y) * strides[0] + static_cast<size_t>(x) * bpp;
        const Rgb c = picture(x, y);
        if (bpp == 1) {
          px[0] = static_cast<uint8_t>(c.r);
          continue;
        }
        px[0] = static_cast<uint8_t>(bgr ? c.b : c.r);
        px[1] = static_cast<uint8_t>(c.g);
        px[2] = static_cast<uint8_t>(bgr ? c.r : c.b);
        if (bpp == 4) px[3] = static_cast<uint8_t>(x * 53 + y * 11);  // alpha or padding byte: ignored
      }
  }

  FrameView view() const {
    FrameView v;
    v.format = format;
    v.width = width;
    v.height = height;
    for (int p = 0; p < 3; ++p) {
      v.planes[p] = strides[p] > 0 ? bytes.data() + offsets[p] : nullptr;
      v.strides[p] = strides[p];
    }
    return v;
  }
};

Picture uniform(Rgb c) {
  return [c](int, int) { return c; };
}

constexpr PixelFormat kPacked[] = {PixelFormat::kRGB,  PixelFormat::kRGBA, PixelFormat::kRGBx,
                                   PixelFormat::kBGR,  PixelFormat::kBGRA, PixelFormat::kBGRx};

TEST(FrameChange, PackedFormatsWeighRgbAsBt601) {
  // Pure primaries catch a swapped channel; the mixed colour the weights themselves.
  const Rgb colours[] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 100, 50}};
  for (PixelFormat format : kPacked)
    for (const Rgb& c : colours) {
      const LumaThumbnail t = luma_thumbnail(Frame(format, 70, 45, 3, uniform(c)).view());
      ASSERT_EQ(t.width, kLumaGrid);
      ASSERT_EQ(t.height, kLumaGrid);
      for (float cell : t.cells) ASSERT_NEAR(cell, bt601(c), 1e-3) << pixel_format_name(format) << " " << c.r << "," << c.g << "," << c.b;
    }
}

TEST(FrameChange, YuvFormatsReadTheYPlaneAsItIs) {
  for (PixelFormat format : {PixelFormat::kNV12, PixelFormat::kI420}) {
    // Odd sizes: the chroma planes round up, the Y plane does not.
    const LumaThumbnail t = luma_thumbnail(Frame(format, 41, 35, 5, uniform({90, 0, 0})).view());
    ASSERT_EQ(t.width, kLumaGrid);
    ASSERT_EQ(t.height, kLumaGrid);
    for (float cell : t.cells) ASSERT_FLOAT_EQ(cell, 90.0f) << pixel_format_name(format);
  }
}

TEST(FrameChange, PaddingDoesNotCount) {
  const Picture gradient = [](int x, int y) { return Rgb{x * 3 % 256, y * 5 % 256, (x + y) % 256}; };
  for (PixelFormat format : {PixelFormat::kRGB, PixelFormat::kBGRx, PixelFormat::kNV12, PixelFormat::kI420}) {
    const LumaThumbnail tight = luma_thumbnail(Frame(format, 77, 51, 0, gradient).view());
    const LumaThumbnail padded = luma_thumbnail(Frame(format, 77, 51, 13, gradient).view());
    EXPECT_EQ(tight.cells, padded.cells) << pixel_format_name(format);
    EXPECT_EQ(mean_abs_difference(tight, padded), 0.0) << pixel_format_name(format);
  }
}

TEST(FrameChange, CellsAverageTheirArea) {
  // 64 x 64: 2 x 2 pixels a cell; one white pixel lights a quarter of its cell.
  const LumaThumbnail dot =
      luma_thumbnail(Frame(PixelFormat::kNV12, 64, 64, 0, [](int x, int y) { return Rgb{x == 10 && y == 21 ? 255 : 0, 0, 0}; }).view());
  for (int cy = 0; cy < kLumaGrid; ++cy)
    for (int cx = 0; cx < kLumaGrid; ++cx)
      EXPECT_FLOAT_EQ(dot.cells[cy * kLumaGrid + cx], cx == 5 && cy == 10 ? 63.75f : 0.0f) << cx << "," << cy;

  // 33 columns in 32 cells: pixel i lies in cell i * 32 / 33, so cell 0 holds pixels 0 and 1 and
  // cell k the pixel k + 1; 5 rows stay 5 rows.
  const LumaThumbnail ramp = luma_thumbnail(Frame(PixelFormat::kI420, 33, 5, 2, [](int x, int) { return Rgb{x, 0, 0}; }).view());
  ASSERT_EQ(ramp.width, 32);
  ASSERT_EQ(ramp.height, 5);
  for (int cy = 0; cy < 5; ++cy) {
    EXPECT_FLOAT_EQ(ramp.cells[cy * 32], 0.5f);
    for (int cx = 1; cx < 32; ++cx) EXPECT_FLOAT_EQ(ramp.cells[cy * 32 + cx], static_cast<float>(cx + 1)) << cx;
  }
}

TEST(FrameChange, TinyFramesKeepEveryPixel) {
  const Picture picture = [](int x, int y) { return Rgb{40 * x, 60 * y, 10 * (x + y)}; };
  const LumaThumbnail t = luma_thumbnail(Frame(PixelFormat::kBGR, 5, 3, 1, picture).view());
  ASSERT_EQ(t.width, 5);
  ASSERT_EQ(t.height, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) EXPECT_NEAR(t.cells[y * 5 + x], bt601(picture(x, y)), 1e-3) << x << "," << y;

  const LumaThumbnail one = luma_thumbnail(Frame(PixelFormat::kRGBA, 1, 1, 0, uniform({10, 20, 30})).view());
  ASSERT_EQ(one.cells.size(), 1u);
  EXPECT_NEAR(one.cells[0], bt601({10, 20, 30}), 1e-3);
}

TEST(FrameChange, NothingToMeasureGivesNoThumbnail) {
  FrameView none;
  EXPECT_TRUE(luma_thumbnail(none).empty());  // 0 x 0, no planes
  FrameView no_plane = Frame(PixelFormat::kRGB, 4, 4, 0, uniform({1, 2, 3})).view();
  no_plane.planes[0] = nullptr;
  EXPECT_TRUE(luma_thumbnail(no_plane).empty());
}

TEST(FrameChange, DifferenceIsTheMeanOverCells) {
  const LumaThumbnail grey = luma_thumbnail(Frame(PixelFormat::kRGB, 64, 32, 0, uniform({10, 10, 10})).view());
  // The right half 100 levels brighter: half the cells differ by 100.
  const LumaThumbnail half =
      luma_thumbnail(Frame(PixelFormat::kRGB, 64, 32, 0, [](int x, int) { return x < 32 ? Rgb{10, 10, 10} : Rgb{110, 110, 110}; }).view());
  ASSERT_TRUE(mean_abs_difference(grey, half).has_value());
  EXPECT_NEAR(*mean_abs_difference(grey, half), 50.0, 1e-4);
  EXPECT_NEAR(*mean_abs_difference(half, grey), 50.0, 1e-4);
  EXPECT_EQ(*mean_abs_difference(grey, grey), 0.0);
  // Other grids (another size) and missing thumbnails cannot be compared.
  const LumaThumbnail smaller = luma_thumbnail(Frame(PixelFormat::kRGB, 16, 16, 0, uniform({10, 10, 10})).view());
  EXPECT_FALSE(mean_abs_difference(grey, smaller).has_value());
  EXPECT_FALSE(mean_abs_difference(grey, LumaThumbnail{}).has_value());
}

TEST(FrameChange, DiffersOnlyByMoreThanTheThreshold) {
  const LumaThumbnail dark = luma_thumbnail(Frame(PixelFormat::kNV12, 40, 30, 0, uniform({50, 0, 0})).view());
  const LumaThumbnail lighter = luma_thumbnail(Frame(PixelFormat::kNV12, 40, 30, 0, uniform({53, 0, 0})).view());
  EXPECT_FALSE(differs_by_more_than(lighter, dark, 3.0)) << "exactly the threshold is no change";
  EXPECT_TRUE(differs_by_more_than(lighter, dark, 2.9));
  EXPECT_FALSE(differs_by_more_than(dark, dark, 0.5));
  EXPECT_TRUE(differs_by_more_than(dark, LumaThumbnail{}, 255.0)) << "no reference yet: asked";
  const LumaThumbnail resized = luma_thumbnail(Frame(PixelFormat::kNV12, 20, 30, 0, uniform({50, 0, 0})).view());
  EXPECT_TRUE(differs_by_more_than(resized, dark, 255.0)) << "another size: asked";
}

}  // namespace
}  // namespace qwenvl::gst
