// OpenAI's error object.
#include "api_error.h"

namespace qwenvl::server {

nlohmann::json ApiError::body() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  return {{"error", {{"message", message}, {"type", type}, {"param", or_null(param)}, {"code", or_null(code)}}}};
}

ApiError invalid_request(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError{400, message, "invalid_request_error", param, code};
}

}  // namespace qwenvl::server
