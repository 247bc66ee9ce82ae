// engine/model/safetensors.cpp: reading files written by the reference writer (safetensors 0.8 via
// transformers) and by hand, and one test per malformed input: each must be a qwenvl::Error whose
// message names the file and the fault.
#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "model/safetensors_test_util.h"
#include "qwenvl/error.h"
#include "test_util.h"

namespace qwenvl::model {
namespace {

using ::testing::HasSubstr;
using test::TempDir;
using test::write_raw_safetensors;
using test::write_safetensors;

// The message of the qwenvl::Error that opening `path` throws ("" when it does not throw).
std::string open_error(const std::filesystem::path& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string entry(const std::string& dtype, const std::vector<int64_t>& shape, uint64_t begin, uint64_t end) {
  return nlohmann::json{{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}}.dump();
}

class SafetensorsTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::filesystem::path file = dir / "model.safetensors";

  void expect_fault(const std::string& fault) {
    const std::string message = open_error(file);
    EXPECT_THAT(message, HasSubstr(file.string()));
    EXPECT_THAT(message, HasSubstr(fault));
  }
};

TEST_F(SafetensorsTest, ReadsEveryDtypeShapeAndMetadata) {
  const at::Tensor f32 = at::arange(12, at::kFloat).reshape({3, 4}) / 7;
  const at::Tensor bf16 = (at::arange(6, at::kFloat) / 3 - 1).to(at::kBFloat16).reshape({2, 3});
  const at::Tensor f16 = (at::arange(5, at::kFloat) * 0.1).to(at::kHalf);
  const at::Tensor i64 = at::tensor({int64_t{1} << 40, int64_t{-3}}, at::kLong);
  const at::Tensor f64 = at::tensor({1.0 / 3.0}, at::kDouble).reshape({1, 1, 1});
  const at::Tensor scalar = at::tensor(2.5f);  // shape []
  const at::Tensor empty = at::empty({0, 4}, at::kFloat);
  write_safetensors(file, {{"f32", f32}, {"bf16", bf16}, {"f16", f16}, {"i64", i64}, {"f64", f64}, {"scalar", scalar},
                           {"empty", empty}},
                    {{"format", "pt"}});

  auto st = SafetensorsFile::open(file);
  EXPECT_EQ(st->tensors().size(), 7u);
  EXPECT_EQ(st->metadata().at("format"), "pt");
  EXPECT_TRUE(at::equal(st->tensor("f32"), f32));
  EXPECT_TRUE(at::equal(st->tensor("bf16"), bf16));
  EXPECT_TRUE(at::equal(st->tensor("f16"), f16));
  EXPECT_TRUE(at::equal(st->tensor("i64"), i64));
  EXPECT_TRUE(at::equal(st->tensor("f64"), f64));
  EXPECT_TRUE(at::equal(st->tensor("scalar"), scalar));
  EXPECT_EQ(st->tensor("empty").sizes().vec(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(st->find("bf16")->dtype, StoredDType::BF16);
  EXPECT_EQ(st->find("bf16")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(st->tensor("bf16").scalar_type(), at::kBFloat16);
  EXPECT_EQ(st->find("nothing"), nullptr);
  EXPECT_THAT(open_error(file), ::testing::IsEmpty());
  try {
    st->tensor("nothing");
    ADD_FAILURE() << "no error for an absent tensor";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'nothing'"));
  }
}

// The file transformers wrote for tiny-b (reference writer, fp32) reads back as transformers read it.
TEST(SafetensorsReference, ReadsTheReferenceWritersFiles) {
  const auto fixtures = test::fixtures_dir();
  const auto cases = nlohmann::json::parse(test::read_text(fixtures / "reference" / "weights_cases.json"));
  auto reference = SafetensorsFile::open(fixtures / cases["tiny-b-v452"]["reference"].get<std::string>());
  // tiny-b-v452's shards use the in-memory names, so the reference file's names are the shards' names.
  const auto dir = fixtures / cases["tiny-b-v452"]["directory"].get<std::string>();
  size_t seen = 0;
  for (const auto& shard : std::filesystem::directory_iterator(dir)) {
    if (shard.path().extension() != ".safetensors") continue;
    auto st = SafetensorsFile::open(shard.path());
    EXPECT_EQ(st->metadata().at("format"), "pt");
    for (const TensorEntry& t : st->tensors()) {
      ASSERT_NE(reference->find(t.name), nullptr) << t.name;
      EXPECT_TRUE(at::equal(st->tensor(t), reference->tensor(t.name).to(at::kFloat))) << t.name;
      ++seen;
    }
  }
  EXPECT_EQ(seen, reference->tensors().size());
}

TEST_F(SafetensorsTest, TensorsAreViewsOfTheMappingThatOutliveTheFileObject) {
  const at::Tensor values = at::randn({64, 32});
  write_safetensors(file, {{"w", values}});
  at::Tensor view;
  {
    auto st = SafetensorsFile::open(file);
    view = st->tensor("w");
    EXPECT_GE(static_cast<const uint8_t*>(view.data_ptr()), st->data_begin());
    EXPECT_LE(static_cast<const uint8_t*>(view.data_ptr()) + view.nbytes(), st->data_end());
  }
  // The file object is gone; the view still holds the mapping, which /proc says is this file.
  EXPECT_EQ(test::mapped_file_of(view.data_ptr()), std::filesystem::canonical(file).string());
  EXPECT_TRUE(at::equal(view, values));
}

TEST_F(SafetensorsTest, UnalignedDataIsCopiedNotMisread) {
  // An unpadded header of odd length puts the F32 data at an odd address.
  const std::string header = "{\"w\":" + entry("F32", {3}, 0, 12) + "}";
  ASSERT_NE((8 + header.size()) % 4, 0u);
  const float values[3] = {1.5f, -2.25f, 3.0f};
  write_raw_safetensors(file, header, std::string(reinterpret_cast<const char*>(values), sizeof values));
  at::Tensor w = SafetensorsFile::open(file)->tensor("w");
  EXPECT_TRUE(at::equal(w, at::tensor({1.5f, -2.25f, 3.0f})));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data_ptr()) % 4, 0u);
}

TEST_F(SafetensorsTest, MissingFile) { expect_fault("missing file"); }

TEST_F(SafetensorsTest, NotARegularFile) {
  std::filesystem::create_directory(file);
  expect_fault("not a regular file");
}

TEST_F(SafetensorsTest, FifoIsRefusedWithoutHanging) {
  ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0);
  expect_fault("not a regular file");
}

TEST_F(SafetensorsTest, EmptyFile) {
  test::write_bytes(file, "");
  expect_fault("truncated");
}

TEST_F(SafetensorsTest, TruncatedLengthField) {
  test::write_bytes(file, std::string("\x10\x00\x00", 3));
  expect_fault("truncated: the file has 3 bytes");
}

TEST_F(SafetensorsTest, HeaderLongerThanTheFile) {
  write_raw_safetensors(file, "{}", "", 1000);
  expect_fault("truncated header: header length 1000 exceeds the 2 bytes");
}

TEST_F(SafetensorsTest, OversizedHeaderIsRefusedBeforeReading) {
  write_raw_safetensors(file, "{}", "", uint64_t{1} << 62);
  expect_fault("oversized header");
  write_raw_safetensors(file, "{}", "", SafetensorsFile::kMaxHeaderBytes + 1);
  expect_fault("oversized header");
}

TEST_F(SafetensorsTest, MalformedJson) {
  write_raw_safetensors(file, "{\"w\": {\"dtype\": ");
  expect_fault("malformed JSON header");
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  write_raw_safetensors(file, "[1, 2]");
  expect_fault("not a JSON object");
}

TEST_F(SafetensorsTest, DeeplyNestedHeader) {
  write_raw_safetensors(file, std::string(100000, '[') + std::string(100000, ']'));
  expect_fault("nested deeper than a safetensors header");
}

TEST_F(SafetensorsTest, DuplicateTensorName) {
  write_raw_safetensors(file, "{\"w\":" + entry("F32", {1}, 0, 4) + ",\"w\":" + entry("F32", {1}, 4, 8) + "}",
                        std::string(8, '\0'));
  expect_fault("tensor 'w' appears twice");
}

TEST_F(SafetensorsTest, EntryLacksAField) {
  write_raw_safetensors(file, R"({"w": {"dtype": "F32", "shape": [1]}})", std::string(4, '\0'));
  expect_fault("tensor 'w': header entry lacks \"data_offsets\"");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  write_raw_safetensors(file, "{\"w\":" + entry("F8_E4M3", {4}, 0, 4) + "}", std::string(4, '\0'));
  expect_fault("tensor 'w': unknown dtype 'F8_E4M3'");
}

TEST_F(SafetensorsTest, NegativeDimension) {
  write_raw_safetensors(file, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
                        std::string(4, '\0'));
  expect_fault("tensor 'w': shape holds -1, not a non-negative integer");
}

TEST_F(SafetensorsTest, OffsetsOutsideTheFile) {
  write_raw_safetensors(file, "{\"w\":" + entry("F32", {4}, 0, 16) + "}", std::string(12, '\0'));
  expect_fault("tensor 'w': data_offsets [0, 16] lie outside the file's data region of 12 bytes");
}

TEST_F(SafetensorsTest, OffsetsBeyondTwoToTheSixtyFour) {
  write_raw_safetensors(file, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e30]}})");
  expect_fault("tensor 'w': data_offsets holds 1e+30, not a non-negative integer");
}

TEST_F(SafetensorsTest, ReversedOffsets) {
  write_raw_safetensors(file, "{\"w\":" + entry("F32", {0}, 8, 4) + "}", std::string(8, '\0'));
  expect_fault("tensor 'w': data_offsets [8, 4] end before they begin");
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  write_raw_safetensors(file, "{\"a\":" + entry("F32", {4}, 0, 16) + ",\"b\":" + entry("F32", {2}, 8, 16) + "}",
                        std::string(16, '\0'));
  expect_fault("tensors 'a' [0, 16] and 'b' [8, 16] overlap");
}

TEST_F(SafetensorsTest, OverlapHiddenBehindALongTensor) {
  // c overlaps a, not its neighbour b in offset order.
  write_raw_safetensors(file,
                        "{\"a\":" + entry("F32", {8}, 0, 32) + ",\"b\":" + entry("F32", {1}, 4, 8) +
                            ",\"c\":" + entry("F32", {1}, 16, 20) + "}",
                        std::string(32, '\0'));
  expect_fault("overlap");
}

TEST_F(SafetensorsTest, SizeDisagreesWithShape) {
  write_raw_safetensors(file, "{\"w\":" + entry("BF16", {2, 3}, 0, 8) + "}", std::string(8, '\0'));
  expect_fault("tensor 'w': data_offsets [0, 8] span 8 bytes, but shape [2, 3] of BF16 needs 12");
}

TEST_F(SafetensorsTest, ShapeWhoseSizeOverflows) {
  write_raw_safetensors(file, "{\"w\":" + entry("F32", {int64_t{1} << 62, 1 << 10}, 0, 0) + "}");
  expect_fault("needs more than 2^64");
}

TEST_F(SafetensorsTest, MetadataMustHoldStrings) {
  write_raw_safetensors(file, R"({"__metadata__": {"format": 1}})");
  expect_fault("__metadata__ value of 'format' is not a string");
}

}  // namespace
}  // namespace qwenvl::model
