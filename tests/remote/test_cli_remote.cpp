// qwenvl-cli --remote against qwenvl-server (its own process) on the tiny fixtures: the image cases
// of transformers' reference (OUT/reference/cli) answered through the remote engine with
// transformers' text and ids, and a --stop string ends the answer and is named; --remote refuses the local engine's flags; a server that cannot be
// reached is exit code 2 with the reason, a request it refuses exit code 3.
#include <gtest/gtest.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "program_run.h"
#include "server_process.h"
#include "test_util.h"

namespace qwenvl::test {
namespace {

using nlohmann::json;

std::string cli() { return env_path("QWENVL_CLI"); }

// The reference case's CLI arguments, with --remote URL in place of --model.
std::string remote_command(const json& reference, const std::string& url) {
  std::string command = "cd " + shell_quote(fixtures_dir().string()) + " && " + shell_quote(cli()) + " --json --remote " + url;
  for (const auto& a : reference["args"]) command += " " + shell_quote(a.get<std::string>());
  return command;
}

TEST(CliRemote, TransformersAnswersThroughTheServer) {
  for (const std::string model : {"tiny-a", "tiny-b"}) {
    ServerProcess server({"--model", (fixtures_dir() / "models" / model).string()});
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
    for (const std::string name : {"one_image", "two_images_system"}) {
      SCOPED_TRACE(model + "/" + name);
      const std::filesystem::path path = fixtures_dir() / "reference" / "cli" / model / (name + ".json");
      if (!std::filesystem::exists(path)) continue;
      const json reference = json::parse(read_text(path));
      const ProgramRun run = run_shell(remote_command(reference, url));
      ASSERT_EQ(run.exit_code, 0) << run.err << server.errors();
      const json out = json::parse(run.out);
      EXPECT_EQ(out["text"], reference["text"]);
      EXPECT_EQ(out["token_ids"], reference["token_ids"]);
      EXPECT_EQ(out["prompt_tokens"], reference["prompt_tokens"]);
      EXPECT_TRUE(out["stop_string"].is_null());
      // --stop with a letter from the second half of the answer: it ends there, and says so.
      const std::string text = reference["text"];
      size_t at = text.size() / 2;
      while (at < text.size() && !std::isalnum(static_cast<unsigned char>(text[at]))) ++at;
      if (at == text.size()) continue;
      const std::string stop(1, text[at]);
      const ProgramRun stopped = run_shell(remote_command(reference, url) + " --stop " + shell_quote(stop));
      ASSERT_EQ(stopped.exit_code, 0) << stopped.err << server.errors();
      const json cut = json::parse(stopped.out);
      EXPECT_EQ(cut["text"], text.substr(0, text.find(stop)));
      EXPECT_EQ(cut["finish_reason"], "stop_string");
      EXPECT_EQ(cut["stop_string"], stop);
    }
  }
}

TEST(CliRemote, FlagsOfTheLocalEngineAreRefused) {
  for (const char* extra : {"--model /tmp", "--device cuda", "--dtype float32", "--plan"}) {
    const ProgramRun run = run_shell(shell_quote(cli()) + " --remote http://127.0.0.1:1/v1 --prompt hi " + extra);
    EXPECT_EQ(run.exit_code, 1) << extra;
    EXPECT_NE(run.err.find("not --remote"), std::string::npos) << run.err;
  }
  const ProgramRun run = run_shell(shell_quote(cli()) + " --prompt hi --remote-model m");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("--model is required (or --remote URL)"), std::string::npos) << run.err;
}

TEST(CliRemote, AnUnreachableServerAndARefusedRequest) {
  ProgramRun run = run_shell(shell_quote(cli()) + " --remote http://127.0.0.1:1/v1 --prompt hi");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("cannot use the server: no model was given and the server at http://127.0.0.1:1/v1"),
            std::string::npos) << run.err;
  ServerProcess server({"--model", (fixtures_dir() / "models" / "tiny-a").string()});
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
  run = run_shell(shell_quote(cli()) + " --remote " + url + " --remote-model not-served --prompt hi");
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("answered HTTP 404"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace qwenvl::test
