// smart_resize against transformers 5.17's own outputs (reference/preprocess/index.json: the spec
// §2.2 examples, half-to-even ties, both limit branches, extreme aspect ratios, random sizes).
#include "preprocessing/smart_resize.h"

#include <gtest/gtest.h>

#include "preprocessing/preprocess_reference.h"
#include "qwenvl/error.h"

namespace {

using qwenvl::model::smart_resize;

TEST(SmartResize, MatchesTransformersTable) {
  const auto& table = qwenvl::test::preprocess_index().at("smart_resize");
  ASSERT_GE(table.size(), 400u);
  int resized = 0, rejected = 0;
  for (const auto& row : table) {
    const int64_t h = row.at("height"), w = row.at("width"), factor = row.at("factor");
    const int64_t mn = row.at("min_pixels"), mx = row.at("max_pixels");
    SCOPED_TRACE(row.dump());
    if (row.contains("resized") && (row.at("resized")[0] == 0 || row.at("resized")[1] == 0)) {
      // transformers returns a zero side here (min_pixels 0) and fails later in resize; we fail at once.
      EXPECT_THROW(smart_resize(h, w, factor, mn, mx), qwenvl::Error);
      ++rejected;
    } else if (row.contains("resized")) {
      const auto [rh, rw] = smart_resize(h, w, factor, mn, mx);
      EXPECT_EQ(rh, row.at("resized")[0].get<int64_t>());
      EXPECT_EQ(rw, row.at("resized")[1].get<int64_t>());
      ++resized;
    } else {
      EXPECT_THROW(smart_resize(h, w, factor, mn, mx), qwenvl::Error);
      ++rejected;
    }
  }
  EXPECT_GT(resized, 300);
  EXPECT_GT(rejected, 5);  // the aspect ratio > 200 rows
}

TEST(SmartResize, AspectRatioErrorSaysWhy) {
  try {
    smart_resize(3, 601, 28, 3136, 12845056);
    FAIL() << "a 3x601 image has aspect ratio 200.3 and must be rejected";
  } catch (const qwenvl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("200"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(smart_resize(1, 200, 28, 3136, 12845056));  // exactly 200 is accepted
}

TEST(SmartResize, RejectsEmptySidesAndBadLimits) {
  EXPECT_THROW(smart_resize(0, 10, 28, 3136, 12845056), qwenvl::Error);
  EXPECT_THROW(smart_resize(10, 0, 28, 3136, 12845056), qwenvl::Error);
  EXPECT_THROW(smart_resize(-5, 10, 28, 3136, 12845056), qwenvl::Error);
  EXPECT_THROW(smart_resize(100, 100, 0, 3136, 12845056), qwenvl::Error);
  EXPECT_THROW(smart_resize(100, 100, 28, 3136, 0), qwenvl::Error);
  // min_pixels 0 lets a 10x10 image round to 0x0: transformers would fail later, we say so here.
  EXPECT_THROW(smart_resize(10, 10, 28, 0, 12845056), qwenvl::Error);
}

}  // namespace
