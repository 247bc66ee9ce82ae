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

}  // namespace

std::string engine_library_path(const std::string& property) {
  if (!property.empty()) return property;
  const char* env = g_getenv("QWENVL_ENGINE_LIBRARY");
  if (env != nullptr && *env != '\0') return env;
  // This plugin's own file says whether it runs from the build tree (GST_PLUGIN_PATH) or installed.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&engine_library_path), &info) != 0 && info.dli_fname != nullptr &&
      same_directory(directory_of(info.dli_fname), QWENVL_PLUGIN_BUILD_DIR))
    return QWENVL_ENGINE_BUILD_PATH;
  if (access(QWENVL_ENGINE_INSTALLED_PATH, F_OK) != 0 && access(QWENVL_ENGINE_BUILD_PATH, F_OK) == 0)
    return QWENVL_ENGINE_BUILD_PATH;
  return QWENVL_ENGINE_INSTALLED_PATH;
}

EngineCreateFunction load_engine_library(const std::string& path, std::string* error) {
  static std::mutex mutex;
  static std::map<std::string, EngineCreateFunction> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    *error = "cannot load the qwenvl engine library '" + path + "': " + (why ? why : "unknown dlopen error");
    return nullptr;
  }
  dlerror();
  void* symbol = dlsym(handle, kEngineCreateSymbol);
  if (symbol == nullptr) {
    const char* why = dlerror();
    *error = "the library '" + path + "' has no " + kEngineCreateSymbol + " (" + (why ? why : "not found") +
             "): is it libqwenvl-engine of the same qwenvl version?";
    dlclose(handle);
    return nullptr;
  }
  auto create = reinterpret_cast<EngineCreateFunction>(symbol);
  loaded[path] = create;
  return create;
}

}  // namespace qwenvl::gst
