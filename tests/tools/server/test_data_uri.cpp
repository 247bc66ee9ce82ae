// Data URIs and base64 as image_url carries images (tools/server/data_uri.cpp).
#include <gtest/gtest.h>

#include "data_uri.h"

namespace {

using qwenvl::server::decode_base64;
using qwenvl::server::parse_data_uri;

TEST(Base64, DecodesRfc4648Vectors) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("Zg=="), "f");
  EXPECT_EQ(decode_base64("Zm8="), "fo");
  EXPECT_EQ(decode_base64("Zm9v"), "foo");
  EXPECT_EQ(decode_base64("Zm9vYg=="), "foob");
  EXPECT_EQ(decode_base64("Zm9vYmE="), "fooba");
  EXPECT_EQ(decode_base64("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode_base64("+/+/"), std::string("\xfb\xff\xbf", 3));
}

TEST(Base64, PaddingMayBeLeftOutAndLinesWrapped) {
  EXPECT_EQ(decode_base64("Zg"), "f");
  EXPECT_EQ(decode_base64("Zm8"), "fo");
  EXPECT_EQ(decode_base64("Zm9v\r\nYmFy\n"), "foobar");
}

TEST(Base64, RefusesWhatIsNotBase64) {
  for (const char* bad : {"Z", "Zm9v!", "Zg=", "Zg===", "=", "Zg==Zg==", "Zh==", "Zm9=", "Zm-_", "Zm9v%"})
    EXPECT_FALSE(decode_base64(bad)) << bad;
}

TEST(DataUri, MediaTypeAndBytes) {
  std::string why;
  const auto uri = parse_data_uri("data:Image/PNG;name=x.png;base64,Zm9v", &why);
  ASSERT_TRUE(uri) << why;
  EXPECT_EQ(uri->media_type, "image/png");
  EXPECT_EQ(uri->data, "foo");
}

TEST(DataUri, SaysWhyItIsNotOne) {
  std::string why;
  EXPECT_FALSE(parse_data_uri("https://example.com/cat.png", &why));
  EXPECT_EQ(why, "not a data URI");
  EXPECT_FALSE(parse_data_uri("data:image/png;base64", &why));
  EXPECT_EQ(why, "a data URI without a comma before its data");
  EXPECT_FALSE(parse_data_uri("data:image/png,raw", &why));
  EXPECT_EQ(why, "a data URI that is not base64 (';base64,' is missing)");
  EXPECT_FALSE(parse_data_uri("data:image/png;base64,@@@", &why));
  EXPECT_EQ(why, "a data URI whose data is not valid base64");
}

}  // namespace
