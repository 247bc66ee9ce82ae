#include "engine_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include <glib.h>

namespace qwenvl::gst {
namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

bool same_directory(const std::string& a, const std::string& b) {
  char* ra = realpath(a.c_str(), nullptr);
  char* rb = realpath(b.c_str(), nullptr);
  const bool same = ra != nullptr && rb != nullptr && std::string(ra) == rb;
  free(ra);
  free(rb);
  return same;
}

// The build tree's library when this plugin runs from the build tree (GST_PLUGIN_PATH), else the
// installed one (or the build tree's, where nothing is installed).
std::string default_library_path(const char* build_path, const char* installed_path) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&default_library_path), &info) != 0 && info.dli_fname != nullptr &&
      same_directory(directory_of(info.dli_fname), QWENVL_PLUGIN_BUILD_DIR))
    return build_path;
  if (access(installed_path, F_OK) != 0 && access(build_path, F_OK) == 0) return build_path;
  return installed_path;
}

void* load_symbol(const std::string& path, const char* symbol, const char* what, std::string* error) {
  static std::mutex mutex;
  static std::map<std::string, void*> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = path + '\n' + symbol;
  auto it = loaded.find(key);
  if (it != loaded.end()) return it->second;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    *error = std::string("cannot load the qwenvl ") + what + " library '" + path + "': " + (why ? why : "unknown dlopen error");
    return nullptr;
  }
  dlerror();
  void* found = dlsym(handle, symbol);
  if (found == nullptr) {
    const char* why = dlerror();
    *error = "the library '" + path + "' has no " + symbol + " (" + (why ? why : "not found") + "): is it the " + what +
             " library of the same qwenvl version?";
    dlclose(handle);
    return nullptr;
  }
  loaded[key] = found;
  return found;
}

}  // namespace

std::string engine_library_path(const std::string& property) {
  if (!property.empty()) return property;
  const char* env = g_getenv("QWENVL_ENGINE_LIBRARY");
  if (env != nullptr && *env != '\0') return env;
  return default_library_path(QWENVL_ENGINE_BUILD_PATH, QWENVL_ENGINE_INSTALLED_PATH);
}

std::string remote_library_path() {
  const char* env = g_getenv("QWENVL_REMOTE_LIBRARY");
  if (env != nullptr && *env != '\0') return env;
  return default_library_path(QWENVL_REMOTE_BUILD_PATH, QWENVL_REMOTE_INSTALLED_PATH);
}

EngineCreateFunction load_engine_library(const std::string& path, std::string* error) {
  return reinterpret_cast<EngineCreateFunction>(load_symbol(path, kEngineCreateSymbol, "engine (libqwenvl-engine)", error));
}

RemoteEngineCreateFunction load_remote_library(const std::string& path, std::string* error) {
  return reinterpret_cast<RemoteEngineCreateFunction>(
      load_symbol(path, kRemoteEngineCreateSymbol, "remote engine (libqwenvl-remote)", error));
}

ConstraintCheckFunction load_constraint_check(const std::string& path, std::string* error) {
  return reinterpret_cast<ConstraintCheckFunction>(
      load_symbol(path, kConstraintCheckSymbol, "engine (libqwenvl-engine)", error));
}

}  // namespace qwenvl::gst
