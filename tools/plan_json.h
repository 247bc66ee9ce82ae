// A plan (qwenvl/placement.h) as one JSON object: what `qwenvl-cli --plan --json` prints, for scripts
// (scripts/placement/compare.py) that need the exact bytes rather than the device map's rounded GiB.
#pragma once

#include <nlohmann/json.hpp>

#include "qwenvl/placement.h"

namespace qwenvl::cli {

nlohmann::json plan_json(const Plan& plan);

}  // namespace qwenvl::cli
