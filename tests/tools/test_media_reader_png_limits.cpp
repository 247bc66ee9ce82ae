// qwenvl-cli's PNG reader against decompression bombs (found by scripts/fuzz.sh fuzz_png, and by hand:
// a valid 2.6 MB PNG of 30000 x 30000 pixels was decoded whole, 2.7 GB): images over PIL's limit of
// 178956970 pixels (what transformers' load_image refuses) are refused from their header, naming the
// file, before any pixel buffer exists.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "claimed_png.h"
#include "media_reader.h"

namespace {

namespace fs = std::filesystem;

using qwenvl::test::claimed_png;

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

// Images in memory (qwenvl-server's uploads): the header is checked against the limit given before
// libpng sees the data, and the message starts with what the caller named.
std::string error_decoding(const std::string& bytes, uint64_t max_pixels = qwenvl::cli::kMaxImagePixels) {
  try {
    qwenvl::cli::decode_image("upload 1", bytes, max_pixels);
  } catch (const qwenvl::cli::CliError& e) {
    return e.message;
  }
  return "<decoded>";
}

TEST(DecodeImageLimits, ThirtyThousandSquaredInMemoryIsRefusedFromItsHeader) {
  EXPECT_EQ(error_decoding(claimed_png(30000, 30000)),
            "upload 1: the PNG header says 30000 x 30000 pixels, over the limit of 178956970 pixels (1048576 a side)");
}

TEST(DecodeImageLimits, TheCallersLimitApplies) {
  EXPECT_NE(error_decoding(claimed_png(64, 64), 64 * 63).find("over the limit of 4032 pixels"), std::string::npos);
  EXPECT_EQ(error_decoding(claimed_png(64, 64), 64 * 64).find("over the limit"), std::string::npos);
}

TEST(DecodeImageLimits, NeitherPngNorJpegIsRefused) {
  EXPECT_EQ(error_decoding("GIF89a......"), "upload 1: not a PNG or JPEG image");
  EXPECT_EQ(error_decoding(""), "upload 1: not a PNG or JPEG image");
}

// The fixture PNG decodes from memory to exactly the pixels read_image gives from its file.
TEST(DecodeImage, MemoryAndFileGiveTheSamePixels) {
  const fs::path path = fs::path(QWENVL_TEST_SOURCE_ROOT) / "tests/fuzz/corpus/fuzz_png/exif_rotated_3x4.png";
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const qwenvl::cli::Image from_file = qwenvl::cli::read_image(path.string());
  const qwenvl::cli::Image from_memory = qwenvl::cli::decode_image("upload", bytes);
  ASSERT_EQ(from_memory.width, from_file.width);
  ASSERT_EQ(from_memory.height, from_file.height);
  ASSERT_EQ(from_memory.stride, from_file.stride);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(from_memory.pixels.get()),
                        static_cast<size_t>(from_memory.stride) * from_memory.height),
            std::string(reinterpret_cast<const char*>(from_file.pixels.get()),
                        static_cast<size_t>(from_file.stride) * from_file.height));
}

}  // namespace
