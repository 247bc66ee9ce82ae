// An error as OpenAI's API reports it: an HTTP status and the body
// {"error": {"message", "type", "param", "code"}}, which the official clients turn into their
// exceptions (BadRequestError for 400, AuthenticationError for 401, NotFoundError for 404, ...).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace qwenvl::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault; empty: null
  std::string code;   // a machine-readable reason; empty: null

  nlohmann::json body() const;
};

// 400 invalid_request_error about `param`.
ApiError invalid_request(const std::string& message, const std::string& param = {}, const std::string& code = {});

}  // namespace qwenvl::server
