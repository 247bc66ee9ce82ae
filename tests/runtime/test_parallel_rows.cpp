// parallel_rows: every row runs exactly once, on more than one thread, and a part's failure comes
// back to the caller only after every part has ended.
#include "runtime/parallel_rows.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace qwenvl::runtime {
namespace {

TEST(ParallelRows, EveryRowRunsExactlyOnce) {
  for (int64_t rows : {0, 1, 2, 3, 17, 64, 1000}) {
    std::vector<std::atomic<int>> runs(static_cast<size_t>(rows));
    parallel_rows(rows, [&](int64_t begin, int64_t end) {
      ASSERT_LE(0, begin);
      ASSERT_LE(begin, end);
      ASSERT_LE(end, rows);
      for (int64_t i = begin; i < end; ++i) runs[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < rows; ++i) EXPECT_EQ(runs[static_cast<size_t>(i)].load(), 1) << "row " << i << " of " << rows;
  }
}

// What at::parallel_for did in this build (no -fopenmp): every row on the calling thread.
TEST(ParallelRows, RowsRunOnMoreThanTheCallingThread) {
  ASSERT_GE(at::get_num_interop_threads(), 1);
  const int64_t rows = 64;
  EXPECT_EQ(parallel_parts(rows), std::min<int64_t>(rows, at::get_num_interop_threads() + 1));
  std::mutex mutex;
  std::set<std::thread::id> threads;
  parallel_rows(rows, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  EXPECT_GE(threads.size(), 2u);
  EXPECT_TRUE(threads.count(std::this_thread::get_id()));
}

TEST(ParallelRows, AFailingPartIsRethrownAfterEveryPartEnded) {
  const int64_t rows = 8;
  std::atomic<int> ended{0};
  EXPECT_THROW(parallel_rows(rows,
                             [&](int64_t begin, int64_t end) {
                               if (begin == 0) throw std::runtime_error("row 0");
                               std::this_thread::sleep_for(std::chrono::milliseconds(20));
                               ended += static_cast<int>(end - begin);
                             }),
               std::runtime_error);
  // The rows of the other parts had all run when the call returned.
  const int64_t first_part = rows / parallel_parts(rows);  // [0, rows / parts): the calling thread's
  EXPECT_EQ(ended.load(), static_cast<int>(rows - first_part));
}

}  // namespace
}  // namespace qwenvl::runtime
