// qwenvl-load-bench: how much memory loading a model directory costs against its files' size.
// The engine maps safetensors files instead of copying them, so after loading and answering one
// request the process's resident memory should grow by about the weights' size, not twice it.
//
//   qwenvl-load-bench MODEL_DIR [--dtype D] [--prompt TEXT]
// Prints one table (markdown) with the sizes and the ratio; run by scripts/bench/load_memory.sh.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "qwenvl/engine.h"

namespace {

// A field of /proc/self/status in MiB ("VmRSS", "VmHWM").
double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == field + ":") {
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
    std::getline(in, key);
  }
  return 0;
}

double weights_mib(const std::filesystem::path& dir) {
  double bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") bytes += static_cast<double>(e.file_size());
  return bytes / (1024.0 * 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: qwenvl-load-bench MODEL_DIR [--dtype D] [--prompt TEXT]\n";
    return 1;
  }
  qwenvl::EngineOptions options;
  options.model_dir = argv[1];
  options.dtype = "auto";
  options.max_batch = 1;
  options.max_context = 512;
  std::string prompt = "Describe the weather in three words.";
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dtype") options.dtype = argv[i + 1];
    else if (flag == "--prompt") prompt = argv[i + 1];
    else {
      std::cerr << "qwenvl-load-bench: unknown option " << flag << "\n";
      return 1;
    }
  }
  try {
    const double files = weights_mib(options.model_dir);
    const double base = status_mib("VmRSS"), base_anon = status_mib("RssAnon"), base_file = status_mib("RssFile");
    const auto t0 = std::chrono::steady_clock::now();
    auto engine = qwenvl::Engine::create(options);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double loaded = status_mib("VmRSS");
    qwenvl::Request request;
    request.prompt = prompt;
    request.sampling.temperature = 0.0;
    request.sampling.max_new_tokens = 8;
    const qwenvl::Result result = engine->submit(std::move(request)).result.get();
    if (result.status != qwenvl::Status::kAnswered) {
      std::cerr << "qwenvl-load-bench: the request failed: " << result.error << "\n";
      return 3;
    }
    const double answered = status_mib("VmRSS"), peak = status_mib("VmHWM");
    // Mapped weights are file-backed pages; a copy would show as heap (anonymous) memory.
    const double heap_growth = status_mib("RssAnon") - base_anon, file_growth = status_mib("RssFile") - base_file;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    std::printf("| model dir | weights (MiB) | RSS before (MiB) | after load | after one answer | peak | growth / weights "
                "| heap growth | file-backed growth | load (s) | date |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.3f | %.1f | %.1f | %.2f | %s |\n", options.model_dir.c_str(),
                files, base, loaded, answered, peak, (peak - base) / files, heap_growth, file_growth, load_s, date);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "qwenvl-load-bench: " << e.what() << "\n";
    return 2;
  }
}
