// Runs the rows of a loop side by side on libtorch's inter-op thread pool and the calling thread,
// and returns once every row has run.
//
// Why not at::parallel_for: its OpenMP body is a template the caller compiles, and this project is
// built without -fopenmp (the torch wheel carries its own libgomp; a second OpenMP runtime in the
// process is a known hazard), so there at::parallel_for runs every row on the calling thread: 64
// token-mask rows took 51 times one row on an H100. at::launch queues work on the pool libtorch
// builds and sizes itself (at::get_num_interop_threads()).
#pragma once

#include <cstdint>
#include <functional>

namespace qwenvl::runtime {

// Calls body(begin, end) over [0, rows) in contiguous parts, at most one per pool thread plus the
// calling thread's; `body` must be safe to run on several threads at once for disjoint ranges.
// What a part throws is rethrown here (the first), after every part has ended.
void parallel_rows(int64_t rows, const std::function<void(int64_t begin, int64_t end)>& body);

// Parts parallel_rows splits `rows` rows into.
int64_t parallel_parts(int64_t rows);

}  // namespace qwenvl::runtime
