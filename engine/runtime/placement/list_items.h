// The items of a comma-separated list as people write them (a device list, a layer split): each one
// trimmed of blanks; "a,,b" has an empty second item, which the list's parser names.
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace qwenvl::runtime::placement {

inline std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

inline std::vector<std::string> list_items(const std::string& list) {
  std::vector<std::string> items;
  for (size_t start = 0;;) {
    const size_t comma = list.find(',', start);
    items.push_back(trim(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

}  // namespace qwenvl::runtime::placement
