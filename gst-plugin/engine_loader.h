// Loads the engine libraries at run time, so that GStreamer can register and document the plugin on
// machines where the engine's own libraries (libtorch, CUDA) cannot be loaded; the element calls
// this at NULL->READY and turns a failure into an error message naming the library. Two libraries:
// the local engine (libqwenvl-engine) and the remote one (libqwenvl-remote, remote-url).
#pragma once

#include <string>

#include "qwenvl/constraint_check.h"
#include "qwenvl/engine.h"
#include "qwenvl/remote_engine.h"

namespace qwenvl::gst {

// The library to load: `property` when set, else $QWENVL_ENGINE_LIBRARY, else the build tree's
// library when this plugin runs from the build tree, else the installed one.
std::string engine_library_path(const std::string& property);
// The remote engine's: $QWENVL_REMOTE_LIBRARY, else the build tree's or the installed one, as above.
std::string remote_library_path();

// dlopen()s `path` (once per path; never closed, libtorch must not be unloaded) and finds the
// factory of qwenvl/engine.h (or qwenvl/remote_engine.h). On failure: nullptr, and *error names
// the library and dlerror().
EngineCreateFunction load_engine_library(const std::string& path, std::string* error);
RemoteEngineCreateFunction load_remote_library(const std::string& path, std::string* error);
// The engine library's check of json-schema / choices (qwenvl/constraint_check.h), from `path` as above.
ConstraintCheckFunction load_constraint_check(const std::string& path, std::string* error);

}  // namespace qwenvl::gst
