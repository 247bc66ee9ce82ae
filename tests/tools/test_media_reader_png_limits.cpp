// qwenvl-cli's PNG reader against decompression bombs (found by scripts/fuzz.sh fuzz_png, and by hand:
// a valid 2.6 MB PNG of 30000 x 30000 pixels was decoded whole, 2.7 GB): images over PIL's limit of
// 178956970 pixels (what transformers' load_image refuses) are refused from their header, naming the
// file, before any pixel buffer exists.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "media_reader.h"

namespace {

namespace fs = std::filesystem;

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  out += body;
  put32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

// A PNG whose header claims width x height RGB pixels, with a token of image data.
std::string claimed_png(uint32_t width, uint32_t height) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, width);
  put32(ihdr, height);
  ihdr += std::string{8, 2, 0, 0, 0};  // 8 bits, RGB, deflate, no filter, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8));
  chunk(png, "IEND", "");
  return png;
}

std::string error_reading(const std::string& png) {
  const fs::path path = fs::temp_directory_path() / "qwenvl_test_png_bomb.png";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << png;
  std::string message = "<decoded>";
  try {
    qwenvl::cli::read_image(path.string());
  } catch (const qwenvl::cli::CliError& e) {
    message = e.message;
  }
  fs::remove(path);
  return message;
}

TEST(PngReaderLimits, ThirtyThousandSquaredIsRefusedFromItsHeader) {
  const std::string message = error_reading(claimed_png(30000, 30000));
  EXPECT_NE(message.find("qwenvl_test_png_bomb.png"), std::string::npos) << message;
  EXPECT_NE(message.find("larger than the limits"), std::string::npos) << message;
}

TEST(PngReaderLimits, JustOverPilsPixelLimitIsRefused) {
  EXPECT_NE(error_reading(claimed_png(20000, 8948)).find("larger than the limits"), std::string::npos);  // 178960000 pixels
  EXPECT_NE(error_reading(claimed_png(1000000, 200)).find("larger than the limits"), std::string::npos);  // a long strip
}

TEST(PngReaderLimits, ASmallImageWithTooLittleDataIsAnErrorNotABomb) {
  const std::string message = error_reading(claimed_png(64, 64));
  EXPECT_EQ(message.find("larger than the limits"), std::string::npos) << message;
  EXPECT_NE(message.find("not a PNG image libpng can decode"), std::string::npos) << message;
}

}  // namespace
