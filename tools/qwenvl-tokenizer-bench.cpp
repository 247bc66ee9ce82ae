// Tokenizer throughput: encodes a corpus file N times (one thread) and prints tokens/s and MB/s.
//   qwenvl-tokenizer-bench <model dir | tokenizer.json> <corpus file> [N=5]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "qwenvl/error.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <model dir | tokenizer.json> <corpus file> [repetitions=5]\n", argv[0]);
    return 2;
  }
  try {
    const std::filesystem::path source = argv[1];
    const int repetitions = argc > 3 ? std::atoi(argv[3]) : 5;
    using Clock = std::chrono::steady_clock;
    const auto load_start = Clock::now();
    const auto tokenizer = std::filesystem::is_directory(source) ? qwenvl::model::Tokenizer::from_model_dir(source)
                                                                 : qwenvl::model::Tokenizer::from_file(source);
    const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) throw qwenvl::Error(std::string(argv[2]) + ": cannot open the corpus");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string corpus = ss.str();

    size_t tokens = tokenizer.encode(corpus).size();  // warm-up (fills the BPE cache, as HF's does)
    const auto start = Clock::now();
    for (int i = 0; i < repetitions; ++i) tokens = tokenizer.encode(corpus).size();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count() / repetitions;
    std::printf("corpus_bytes=%zu tokens=%zu load_s=%.3f encode_s=%.4f tokens_per_s=%.0f mb_per_s=%.2f\n",
                corpus.size(), tokens, load_s, seconds, tokens / seconds, corpus.size() / seconds / 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-tokenizer-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
