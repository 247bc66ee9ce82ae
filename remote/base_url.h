// An OpenAI-compatible base URL ("http://host:port/v1", as the openai client takes it) split into
// what cpp-httplib's Client is made from and the path that every endpoint goes under.
#pragma once

#include <string>

namespace qwenvl::remote {

struct BaseUrl {
  std::string origin;  // "http://host:port" (scheme, host and port only)
  std::string path;    // "/v1" (no trailing slash; may be empty)
};

// Throws qwenvl::Error saying what is wrong with `url`.
BaseUrl parse_base_url(const std::string& url);

}  // namespace qwenvl::remote
