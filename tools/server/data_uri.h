// Images arrive inside the request as data URIs (RFC 2397): "data:image/png;base64,iVBORw0...".
// Pure functions, no allocation beyond the decoded bytes; fuzzed with the request parsing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace qwenvl::server {

struct DataUri {
  std::string media_type;  // lower case, without parameters: "image/png"
  std::string data;        // the decoded bytes
};

// "data:MEDIA_TYPE[;PARAM]...;base64,DATA"; nullopt, with the reason in *why, for anything else
// (not a data URI, not base64, an invalid base64 payload).
std::optional<DataUri> parse_data_uri(std::string_view uri, std::string* why);

// Base64 of RFC 4648's standard alphabet; padding may be left out, ASCII white space is skipped (MIME
// wraps lines). nullopt for any other character, padding in the middle or a dangling sixth bit.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace qwenvl::server
