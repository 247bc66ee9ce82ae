// Rows side by side on libtorch's inter-op pool (parallel_rows.h).
#include "runtime/parallel_rows.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>

namespace qwenvl::runtime {

int64_t parallel_parts(int64_t rows) {
  if (rows <= 1) return std::max<int64_t>(rows, 0);
  return std::min<int64_t>(rows, static_cast<int64_t>(at::get_num_interop_threads()) + 1);
}

void parallel_rows(int64_t rows, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t parts = parallel_parts(rows);
  if (parts == 0) return;
  if (parts == 1) {
    body(0, rows);
    return;
  }
  // Shared with the pool's tasks; this call waits for all of them, so `body` outlives them.
  struct Progress {
    std::mutex mutex;
    std::condition_variable all_done;
    int64_t running = 0;
    std::exception_ptr error;
    void ended(std::exception_ptr e) {
      std::lock_guard<std::mutex> lock(mutex);
      if (e && !error) error = e;
      if (--running == 0) all_done.notify_one();
    }
  };
  auto progress = std::make_shared<Progress>();
  progress->running = parts;
  const auto begin_of = [rows, parts](int64_t part) { return rows * part / parts; };
  for (int64_t part = 1; part < parts; ++part) {
    const int64_t begin = begin_of(part), end = begin_of(part + 1);
    at::launch([progress, &body, begin, end] {
      std::exception_ptr error;
      try {
        body(begin, end);
      } catch (...) {
        error = std::current_exception();
      }
      progress->ended(error);
    });
  }
  std::exception_ptr error;
  try {
    body(0, begin_of(1));
  } catch (...) {
    error = std::current_exception();
  }
  progress->ended(error);
  std::unique_lock<std::mutex> lock(progress->mutex);
  progress->all_done.wait(lock, [&] { return progress->running == 0; });
  if (progress->error) std::rethrow_exception(progress->error);
}

}  // namespace qwenvl::runtime
