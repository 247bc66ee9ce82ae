// QWENVL_MICRO_BATCHES and QWENVL_STAGE_COPY (stage_tuning.h).
#include "runtime/stages/stage_tuning.h"

#include <cstdlib>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::runtime::stages {

StageTuning with_environment(StageTuning tuning) {
  if (tuning.micro_batches == 0)
    if (const char* n = std::getenv("QWENVL_MICRO_BATCHES"); n != nullptr && *n != '\0') {
      try {
        tuning.micro_batches = std::stoi(n);
      } catch (const std::exception&) {
        tuning.micro_batches = -1;
      }
      if (tuning.micro_batches <= 0) throw Error(std::string("QWENVL_MICRO_BATCHES='") + n + "' is not a positive count");
    }
  if (const char* copy = std::getenv("QWENVL_STAGE_COPY"); copy != nullptr && *copy != '\0') {
    const std::string path = copy;
    if (path == "host") tuning.copy_through_host = true;
    else if (path != "device") throw Error("QWENVL_STAGE_COPY='" + path + "': use host or device");
  }
  return tuning;
}

}  // namespace qwenvl::runtime::stages
