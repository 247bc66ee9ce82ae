// The sizes that PNG and JPEG headers declare, read without decoding (tools/image_header.cpp): what
// qwenvl-server checks against its pixel limit before any decoder allocates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "claimed_png.h"
#include "image_header.h"

namespace {

using qwenvl::cli::ImageFormat;
using qwenvl::cli::ImageHeader;
using qwenvl::cli::read_image_header;

std::optional<ImageHeader> header_of(const std::string& bytes) {
  return read_image_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string file(const std::string& relative) {
  std::ifstream in(std::filesystem::path(QWENVL_TEST_SOURCE_ROOT) / relative, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// SOI, an APP0 segment, fill bytes, then a start-of-frame marker of `sof` declaring height x width.
std::string jpeg_with_frame(uint8_t sof, uint16_t height, uint16_t width) {
  std::string j = "\xFF\xD8";
  j += std::string("\xFF\xE0\x00\x06JFIF", 8);
  j += "\xFF\xFF";  // fill bytes before the next marker
  j += std::string{'\xFF',
                   static_cast<char>(sof),
                   0,
                   11,
                   8,
                   static_cast<char>(height >> 8),
                   static_cast<char>(height & 0xFF),
                   static_cast<char>(width >> 8),
                   static_cast<char>(width & 0xFF),
                   1,
                   1,
                   0x11,
                   0};
  return j;
}

TEST(ImageHeader, PngSaysItsSize) {
  const auto h = header_of(qwenvl::test::claimed_png(30000, 20000));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->format, ImageFormat::kPng);
  EXPECT_EQ(h->width, 30000u);
  EXPECT_EQ(h->height, 20000u);
}

TEST(ImageHeader, JpegFileWrittenByPillow) {
  const auto h = header_of(file("tests/tools/server/sample_64x48.jpg"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->format, ImageFormat::kJpeg);
  EXPECT_EQ(h->width, 64u);
  EXPECT_EQ(h->height, 48u);
}

TEST(ImageHeader, ProgressiveJpegAfterSegmentsAndFillBytes) {
  const auto h = header_of(jpeg_with_frame(0xC2, 30000, 30000));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->width, 30000u);
  EXPECT_EQ(h->height, 30000u);
}

TEST(ImageHeader, HuffmanTablesAreNotAFrame) {
  EXPECT_FALSE(header_of(jpeg_with_frame(0xC4, 10, 10)));  // DHT then nothing: no frame header
}

TEST(ImageHeader, AnythingElseHasNone) {
  EXPECT_FALSE(header_of(""));
  EXPECT_FALSE(header_of("GIF89a"));
  EXPECT_FALSE(header_of(qwenvl::test::claimed_png(0, 10)));                 // a zero side
  EXPECT_FALSE(header_of(jpeg_with_frame(0xC0, 0, 10)));                     // height left to a DNL marker
  EXPECT_FALSE(header_of(qwenvl::test::claimed_png(10, 10).substr(0, 20)));  // cut inside IHDR
  EXPECT_FALSE(header_of(jpeg_with_frame(0xC0, 10, 10).substr(0, 16)));      // cut inside the frame header
  EXPECT_FALSE(header_of(std::string("\xFF\xD8\xFF\xDA\x00\x02", 6)));       // scan data before a frame
}

}  // namespace
