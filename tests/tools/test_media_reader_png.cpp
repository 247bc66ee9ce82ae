// qwenvl-cli's PNG-only reader (tools/media_reader_png.cpp) on PNGs this test writes with libpng in
// every colour type and bit depth, interlaced, with alpha / tRNS and with EXIF orientations. Expected
// pixels follow OpenCV's IMREAD_COLOR rules (16 bits -> the high byte, alpha dropped uncomposited, gray
// copied to three channels); where OpenCV is built in (QWENVL_TEST_WITH_OPENCV), every file is also
// read with cv::imread and must give the same pixels, so the rules are OpenCV's own.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "error_of.h"
#include "media_reader.h"

#if QWENVL_TEST_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

namespace {

namespace fs = std::filesystem;
using qwenvl::cli::CliError;
using RGB = std::array<uint8_t, 3>;

// A PNG to write: samples as stored (row-major, the colour type's channels per pixel, values at the
// bit depth; palette indices for PNG_COLOR_TYPE_PALETTE).
struct TestPng {
  std::string name;
  int width = 0, height = 0, color_type = PNG_COLOR_TYPE_RGB, depth = 8;
  std::vector<int> samples;
  std::vector<png_color> palette;
  std::vector<png_byte> palette_alpha;  // tRNS of a palette image
  bool colour_key = false;              // a tRNS colour key (gray / RGB)
  bool interlaced = false;
  int orientation = 0;  // EXIF orientation tag; 0: no eXIf chunk
  bool exif_big_endian = false;
  bool exif_after_image = false;
};

int channels(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;  // palette
  }
}

// Deterministic samples in [0, 2^depth) (or palette indices).
std::vector<int> samples_for(const TestPng& p, uint32_t seed) {
  const int count = p.width * p.height * channels(p.color_type);
  const int limit = p.color_type == PNG_COLOR_TYPE_PALETTE ? static_cast<int>(p.palette.size()) : 1 << p.depth;
  std::vector<int> samples(static_cast<size_t>(count));
  for (int& s : samples) {
    seed = seed * 1664525u + 1013904223u;
    s = static_cast<int>((seed >> 8) % static_cast<uint32_t>(limit));
  }
  return samples;
}

// A TIFF structure with one IFD0 entry: Orientation (0x0112), SHORT, count 1.
std::vector<png_byte> exif_orientation(int orientation, bool big_endian) {
  std::vector<png_byte> d;
  auto u16 = [&](unsigned v) {
    if (big_endian) d.insert(d.end(), {png_byte(v >> 8), png_byte(v)});
    else d.insert(d.end(), {png_byte(v), png_byte(v >> 8)});
  };
  auto u32 = [&](unsigned v) {
    if (big_endian) u16(v >> 16), u16(v & 0xffff);
    else u16(v & 0xffff), u16(v >> 16);
  };
  d.push_back(big_endian ? 'M' : 'I');
  d.push_back(big_endian ? 'M' : 'I');
  u16(42);
  u32(8);  // IFD0 right after the header
  u16(1);  // one entry
  u16(0x0112), u16(3), u32(1), u16(static_cast<unsigned>(orientation)), u16(0);
  u32(0);  // no next IFD
  return d;
}

void write_png(const fs::path& path, const TestPng& p) {
  const int bits_per_row = p.width * channels(p.color_type) * p.depth;
  std::vector<std::vector<png_byte>> rows(static_cast<size_t>(p.height),
                                          std::vector<png_byte>(static_cast<size_t>((bits_per_row + 7) / 8)));
  const int per_row = p.width * channels(p.color_type);
  for (int y = 0; y < p.height; ++y) {
    for (int i = 0; i < per_row; ++i) {
      const int v = p.samples[static_cast<size_t>(y * per_row + i)];
      auto& row = rows[static_cast<size_t>(y)];
      if (p.depth == 16) {
        row[2 * i] = png_byte(v >> 8), row[2 * i + 1] = png_byte(v);
      } else if (p.depth == 8) {
        row[i] = png_byte(v);
      } else {  // sub-byte samples, first one in the high bits
        const int bit = i * p.depth;
        row[bit / 8] |= png_byte(v << (8 - p.depth - bit % 8));
      }
    }
  }
  std::vector<png_bytep> row_pointers;
  for (auto& r : rows) row_pointers.push_back(r.data());
  std::vector<png_byte> exif = p.orientation ? exif_orientation(p.orientation, p.exif_big_endian) : std::vector<png_byte>{};

  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    FAIL() << "libpng cannot write " << path;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(p.width), static_cast<png_uint_32>(p.height), p.depth, p.color_type,
               p.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!p.palette.empty()) png_set_PLTE(png, info, p.palette.data(), static_cast<int>(p.palette.size()));
  if (!p.palette_alpha.empty())
    png_set_tRNS(png, info, p.palette_alpha.data(), static_cast<int>(p.palette_alpha.size()), nullptr);
  if (p.colour_key) {  // the first pixel's colour is the transparent one
    png_color_16 key{};
    key.gray = static_cast<png_uint_16>(p.samples[0]);
    if (channels(p.color_type) >= 3) {
      key.red = static_cast<png_uint_16>(p.samples[0]);
      key.green = static_cast<png_uint_16>(p.samples[1]);
      key.blue = static_cast<png_uint_16>(p.samples[2]);
    }
    png_set_tRNS(png, info, nullptr, 0, &key);
  }
  if (!exif.empty() && !p.exif_after_image) png_set_eXIf_1(png, info, static_cast<png_uint_32>(exif.size()), exif.data());
  png_write_info(png, info);
  png_write_image(png, row_pointers.data());
  if (!exif.empty() && p.exif_after_image) png_set_eXIf_1(png, info, static_cast<png_uint_32>(exif.size()), exif.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

// The stored pixels as OpenCV's IMREAD_COLOR gives them, before any EXIF orientation.
std::vector<RGB> expected_pixels(const TestPng& p) {
  const int c = channels(p.color_type);
  auto to8 = [&](int v) {
    if (p.depth == 16) return uint8_t(v >> 8);
    if (p.depth < 8) return uint8_t(v * 255 / ((1 << p.depth) - 1));
    return uint8_t(v);
  };
  std::vector<RGB> out;
  for (int i = 0; i < p.width * p.height; ++i) {
    const int* s = &p.samples[static_cast<size_t>(i * c)];
    if (p.color_type == PNG_COLOR_TYPE_PALETTE) {
      const png_color& e = p.palette[static_cast<size_t>(s[0])];
      out.push_back({e.red, e.green, e.blue});
    } else if (c < 3) {
      out.push_back({to8(s[0]), to8(s[0]), to8(s[0])});
    } else {
      out.push_back({to8(s[0]), to8(s[1]), to8(s[2])});
    }
  }
  return out;
}

std::vector<RGB> pixels_of(const qwenvl::cli::Image& image) {
  EXPECT_EQ(image.format, qwenvl::PixelFormat::kRGB);
  std::vector<RGB> out;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* px = image.pixels.get() + static_cast<size_t>(y) * image.stride + x * 3;
      out.push_back({px[0], px[1], px[2]});
    }
  return out;
}

class PngReader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qwenvl_png_reader_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the file, reads it with the PNG reader and (where built in) with OpenCV: both must agree.
  std::vector<RGB> write_and_read(const TestPng& p, int* width, int* height) {
    const fs::path path = dir_ / (p.name + ".png");
    write_png(path, p);
    const qwenvl::cli::Image image = qwenvl::cli::read_image(path.string());
    *width = image.width;
    *height = image.height;
    std::vector<RGB> ours = pixels_of(image);
#if QWENVL_TEST_WITH_OPENCV
    const cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
    EXPECT_EQ(bgr.cols, image.width) << p.name;
    EXPECT_EQ(bgr.rows, image.height) << p.name;
    std::vector<RGB> opencv;
    for (int y = 0; y < bgr.rows; ++y)
      for (int x = 0; x < bgr.cols; ++x) {
        const auto& px = bgr.at<cv::Vec3b>(y, x);
        opencv.push_back({px[2], px[1], px[0]});
      }
    EXPECT_TRUE(opencv == ours) << p.name << ": OpenCV's imread gives other pixels";
#endif
    return ours;
  }

  fs::path dir_;
};

std::vector<png_color> test_palette(int size) {
  std::vector<png_color> palette;
  for (int i = 0; i < size; ++i)
    palette.push_back({png_byte(i * 37 + 5), png_byte(255 - i * 11), png_byte(i * 101 % 256)});
  return palette;
}

std::vector<TestPng> colour_cases() {
  std::vector<TestPng> cases;
  auto add = [&](std::string name, int color_type, int depth) {
    TestPng p;
    p.name = std::move(name);
    p.width = 7, p.height = 5, p.color_type = color_type, p.depth = depth;
    cases.push_back(p);
    return &cases.back();
  };
  add("rgb8", PNG_COLOR_TYPE_RGB, 8);
  add("rgb16", PNG_COLOR_TYPE_RGB, 16);
  add("rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8);
  add("rgba16", PNG_COLOR_TYPE_RGB_ALPHA, 16);
  for (int depth : {1, 2, 4, 8, 16}) add("gray" + std::to_string(depth), PNG_COLOR_TYPE_GRAY, depth);
  add("gray_alpha8", PNG_COLOR_TYPE_GRAY_ALPHA, 8);
  add("gray_alpha16", PNG_COLOR_TYPE_GRAY_ALPHA, 16);
  for (int depth : {1, 2, 4, 8}) {
    TestPng* p = add("palette" + std::to_string(depth), PNG_COLOR_TYPE_PALETTE, depth);
    p->palette = test_palette(1 << std::min(depth, 4));
  }
  TestPng* alpha_palette = add("palette8_trns", PNG_COLOR_TYPE_PALETTE, 8);
  alpha_palette->palette = test_palette(12);
  alpha_palette->palette_alpha = {0, 128, 255, 7};
  add("rgb8_colour_key", PNG_COLOR_TYPE_RGB, 8)->colour_key = true;
  add("gray16_colour_key", PNG_COLOR_TYPE_GRAY, 16)->colour_key = true;
  add("rgb8_interlaced", PNG_COLOR_TYPE_RGB, 8)->interlaced = true;
  add("gray2_interlaced", PNG_COLOR_TYPE_GRAY, 2)->interlaced = true;
  uint32_t seed = 1;
  for (TestPng& p : cases) p.samples = samples_for(p, seed++);
  return cases;
}

// Every colour type and depth decodes to OpenCV's IMREAD_COLOR pixels.
TEST_F(PngReader, DecodesLikeOpenCvImreadColor) {
  for (const TestPng& p : colour_cases()) {
    int width = 0, height = 0;
    const std::vector<RGB> pixels = write_and_read(p, &width, &height);
    EXPECT_EQ(width, p.width) << p.name;
    EXPECT_EQ(height, p.height) << p.name;
    EXPECT_TRUE(pixels == expected_pixels(p)) << p.name;
  }
}

// EXIF orientation, as the EXIF specification (and OpenCV's own test of it) states: stored quadrants
// R G / B W shown upright for tag 1, and the stored layouts of tags 2-8 that display as R G / B W.
TEST_F(PngReader, AppliesExifOrientation) {
  const RGB R{255, 0, 0}, G{0, 255, 0}, B{0, 0, 255}, W{255, 255, 255};
  const std::array<RGB, 4> stored[9] = {{},           {R, G, B, W}, {G, R, W, B}, {W, B, G, R}, {B, W, R, G},
                                        {R, B, G, W}, {G, W, R, B}, {W, G, B, R}, {B, R, W, G}};
  for (int tag = 1; tag <= 8; ++tag) {
    for (const bool big_endian : {false, true}) {
      TestPng p;
      p.name = "orientation" + std::to_string(tag) + (big_endian ? "_mm" : "_ii");
      p.width = 4, p.height = 4, p.orientation = tag, p.exif_big_endian = big_endian;
      p.exif_after_image = tag % 2 == 0;  // the chunk may follow the image data
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x)
          for (const uint8_t v : stored[tag][static_cast<size_t>((y / 2) * 2 + x / 2)]) p.samples.push_back(v);
      int width = 0, height = 0;
      const std::vector<RGB> pixels = write_and_read(p, &width, &height);
      ASSERT_EQ(pixels.size(), 16u);
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
          const RGB& want = (y < 2) ? (x < 2 ? R : G) : (x < 2 ? B : W);
          EXPECT_TRUE(pixels[static_cast<size_t>(y * 4 + x)] == want) << p.name << " at " << x << "," << y;
        }
    }
  }
}

// Orientations 5-8 swap width and height; OpenCV's imread gives the same pixels (where built in).
TEST_F(PngReader, TransposingOrientationsSwapTheSides) {
  for (int tag = 1; tag <= 8; ++tag) {
    TestPng p;
    p.name = "wide_orientation" + std::to_string(tag);
    p.width = 5, p.height = 3, p.orientation = tag;
    p.samples = samples_for(p, 100 + static_cast<uint32_t>(tag));
    int width = 0, height = 0;
    write_and_read(p, &width, &height);
    EXPECT_EQ(width, tag >= 5 ? 3 : 5) << p.name;
    EXPECT_EQ(height, tag >= 5 ? 5 : 3) << p.name;
  }
}

std::string error_of(const std::function<void()>& read) {
  try {
    read();
  } catch (const CliError& e) {
    EXPECT_EQ(e.code, qwenvl::cli::kUsageError);
    return e.message;
  }
  ADD_FAILURE() << "no CliError";
  return "";
}

// Other formats, broken PNGs and videos: a usage error that names the file and, where the format is
// the cause, says that this build reads PNG only.
TEST_F(PngReader, RefusesOtherInputsSayingWhy) {
  const std::string bmp = (dir_ / "picture.bmp").string();
  std::ofstream(bmp, std::ios::binary) << "BM6 a bitmap header and no more";
  EXPECT_EQ(error_of([&] { qwenvl::cli::read_image(bmp); }),
            "image '" + bmp + "': not a PNG file; this qwenvl-cli was built without OpenCV, so only PNG images are read");

  TestPng p;
  p.name = "whole";
  p.width = 40, p.height = 30;
  p.samples = samples_for(p, 7);
  write_png(dir_ / "whole.png", p);
  std::ifstream in(dir_ / "whole.png", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = (dir_ / "cut.png").string(), bad_crc = (dir_ / "bad_crc.png").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::string corrupted = bytes;
  corrupted[20] ^= 0x01;  // inside IHDR: its CRC no longer matches
  std::ofstream(bad_crc, std::ios::binary) << corrupted;
  for (const std::string& path : {cut, bad_crc}) {
    const std::string message = error_of([&] { qwenvl::cli::read_image(path); });
    EXPECT_EQ(message.rfind("image '" + path + "': not a PNG image libpng can decode (", 0), 0u) << message;
  }

  EXPECT_EQ(error_of([&] { qwenvl::cli::read_video_clip("clip.avi", 0, 2.0); }),
            "video 'clip.avi': this qwenvl-cli was built without OpenCV, so only PNG images are read, no videos");
  EXPECT_NE(error_of([&] { qwenvl::cli::read_image((dir_ / "nope.png").string()); }).find("no such file"),
            std::string::npos);
}

}  // namespace
