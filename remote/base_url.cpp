// Base URL parsing: the scheme and authority as they are, the path without its trailing slashes.
#include "base_url.h"

#include "qwenvl/error.h"

namespace qwenvl::remote {

BaseUrl parse_base_url(const std::string& url) {
  const size_t scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    throw Error("remote URL '" + url + "' must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)");
  const size_t authority = scheme_end + 3;
  const size_t slash = url.find('/', authority);
  BaseUrl out;
  out.origin = url.substr(0, slash);
  if (out.origin.size() == authority) throw Error("remote URL '" + url + "' names no host");
  if (url.find_first_of("?#") != std::string::npos)
    throw Error("remote URL '" + url + "' must be a base URL, without a query or fragment");
  out.path = slash == std::string::npos ? "" : url.substr(slash);
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  return out;
}

}  // namespace qwenvl::remote
