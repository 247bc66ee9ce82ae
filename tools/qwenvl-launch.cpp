// qwenvl-launch 'PIPELINE': runs a gst-launch-1.0 style pipeline description to EOS (or error) and
// prints every "qwenvl-result" element message as one JSON line on stdout, so that scripts can read
// a pipeline's answers without parsing gst-launch-1.0's -m output. Nothing else goes to stdout;
// faults go to stderr as one line each and make the exit status non-zero: errors, and a run whose
// every request failed (qwenvl-failed, none answered). Warnings (the element posts one for each
// failed request, with its reason) are stderr lines too, and alone leave the status 0. SIGINT sends EOS first so
// that the elements drain their pending answers; a second SIGINT quits at once.
//   qwenvl-launch [--stats] 'PIPELINE'   --stats: at the end, each qwenvl element's `stats` on stderr
#include <glib-unix.h>
#include <gst/gst.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using nlohmann::json;

struct Run {
  GstElement* pipeline = nullptr;
  GMainLoop* loop = nullptr;
  bool failed = false;
  bool interrupted = false;
  uint64_t answered = 0, failed_requests = 0;  // qwenvl-result and qwenvl-failed messages
};

std::string string_field(const GstStructure* s, const char* name) {
  const gchar* v = gst_structure_get_string(s, name);
  return v != nullptr ? v : "";
}

json uint64_field(const GstStructure* s, const char* name) {
  guint64 v = 0;
  if (!gst_structure_get_uint64(s, name, &v)) return nullptr;
  if (v == GST_CLOCK_TIME_NONE) return nullptr;  // an unknown pts
  return v;
}

json int_field(const GstStructure* s, const char* name) {
  gint v = 0;
  if (!gst_structure_get_int(s, name, &v)) return nullptr;
  return v;
}

json token_ids(const GstStructure* s) {
  json ids = json::array();
  const GValue* array = gst_structure_get_value(s, "token-ids");
  if (array == nullptr || !GST_VALUE_HOLDS_ARRAY(array)) return ids;
  const guint n = gst_value_array_get_size(array);
  for (guint i = 0; i < n; ++i) {
    const GValue* v = gst_value_array_get_value(array, i);
    if (G_VALUE_HOLDS_INT(v)) ids.push_back(g_value_get_int(v));
  }
  return ids;
}

// One answer as a JSON object; times in nanoseconds as the element posts them.
json answer_json(GstMessage* message, const GstStructure* s) {
  json j;
  j["element"] = GST_OBJECT_NAME(GST_MESSAGE_SRC(message));
  j["stream_id"] = string_field(s, "stream-id");
  j["request_id"] = uint64_field(s, "request-id");
  j["pts"] = uint64_field(s, "pts");
  j["prompt"] = string_field(s, "prompt");
  j["text"] = string_field(s, "text");
  j["token_ids"] = token_ids(s);
  j["prompt_tokens"] = int_field(s, "prompt-tokens");
  j["generated_tokens"] = int_field(s, "generated-tokens");
  j["finish_reason"] = string_field(s, "finish-reason");
  j["stop_string"] = gst_structure_has_field(s, "stop-string") ? json(string_field(s, "stop-string")) : json(nullptr);
  j["latency"] = uint64_field(s, "latency");
  j["ttft"] = uint64_field(s, "ttft");
  gboolean alert = FALSE;  // alert-when; an element without it sends false
  gst_structure_get_boolean(s, "alert", &alert);
  j["alert"] = alert != FALSE;
  // Only on clip answers (clip-frames) and region answers (roi=true).
  if (gst_structure_has_field(s, "window-start")) {
    j["window_start"] = uint64_field(s, "window-start");
    j["window_end"] = uint64_field(s, "window-end");
  }
  if (gst_structure_has_field(s, "roi-id")) {
    j["roi_id"] = int_field(s, "roi-id");
    j["roi_type"] = string_field(s, "roi-type");
    guint x = 0, y = 0, w = 0, h = 0;
    gst_structure_get(s, "roi-x", G_TYPE_UINT, &x, "roi-y", G_TYPE_UINT, &y, "roi-width", G_TYPE_UINT, &w, "roi-height",
                      G_TYPE_UINT, &h, nullptr);
    j["roi_box"] = {x, y, w, h};
  }
  return j;
}

// One line: newlines inside the message or the debug detail become spaces.
std::string one_line(const char* text) {
  std::string s = text != nullptr ? text : "";
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

void print_error(GstMessage* message) {
  GError* error = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  const std::string text = one_line(error != nullptr ? error->message : "unknown error");
  const std::string detail = one_line(debug);
  std::fprintf(stderr, "qwenvl-launch: error from %s: %s%s%s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
               text.c_str(), detail.empty() ? "" : " | ", detail.c_str());
  g_clear_error(&error);
  g_free(debug);
}

gboolean on_bus_message(GstBus*, GstMessage* message, gpointer data) {
  Run& run = *static_cast<Run*>(data);
  switch (GST_MESSAGE_TYPE(message)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure* s = gst_message_get_structure(message);
      if (s != nullptr && gst_structure_has_name(s, "qwenvl-result")) {
        // dump() with replace: the model may produce invalid UTF-8 (random weights do).
        const std::string line = answer_json(message, s).dump(-1, ' ', false, json::error_handler_t::replace);
        std::fprintf(stdout, "%s\n", line.c_str());
        std::fflush(stdout);
        ++run.answered;
      } else if (s != nullptr && gst_structure_has_name(s, "qwenvl-failed")) {
        ++run.failed_requests;  // its reason reaches stderr as the element's warning
      }
      break;
    }
    case GST_MESSAGE_WARNING: {
      GError* error = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_warning(message, &error, &debug);
      const std::string detail = one_line(debug);
      std::fprintf(stderr, "qwenvl-launch: warning from %s: %s%s%s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                   one_line(error != nullptr ? error->message : "unknown warning").c_str(), detail.empty() ? "" : " | ",
                   detail.c_str());
      g_clear_error(&error);
      g_free(debug);
      break;
    }
    case GST_MESSAGE_ERROR:
      print_error(message);
      run.failed = true;
      g_main_loop_quit(run.loop);
      break;
    case GST_MESSAGE_EOS: g_main_loop_quit(run.loop); break;
    default: break;
  }
  return TRUE;
}

gboolean on_sigint(gpointer data) {
  Run& run = *static_cast<Run*>(data);
  if (run.interrupted) {  // the second Ctrl-C: stop waiting for EOS
    g_main_loop_quit(run.loop);
    return G_SOURCE_REMOVE;
  }
  run.interrupted = true;
  std::fprintf(stderr, "qwenvl-launch: interrupted, sending EOS (Ctrl-C again to quit now)\n");
  gst_element_send_event(run.pipeline, gst_event_new_eos());
  return G_SOURCE_CONTINUE;
}

// Prints the `stats` structure of every qwenvl element in the pipeline to stderr, one line each.
void print_stats(GstElement* pipeline) {
  GstIterator* it = gst_bin_iterate_recurse(GST_BIN(pipeline));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement* element = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory* factory = gst_element_get_factory(element);
    if (factory != nullptr && std::string(GST_OBJECT_NAME(factory)) == "qwenvl") {
      GstStructure* stats = nullptr;
      g_object_get(element, "stats", &stats, nullptr);
      if (stats != nullptr) {
        gchar* text = gst_structure_to_string(stats);
        std::fprintf(stderr, "qwenvl-launch: stats of %s: %s\n", GST_OBJECT_NAME(element), text);
        g_free(text);
        gst_structure_free(stats);
      }
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}

std::string join_arguments(int argc, char** argv, int first) {
  // Like gst-launch-1.0: the arguments together form the description.
  std::string description;
  for (int i = first; i < argc; ++i) {
    if (!description.empty()) description += ' ';
    description += argv[i];
  }
  return description;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  if (argc < 2 || std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") {
    std::fprintf(stderr, "usage: qwenvl-launch [--stats] 'PIPELINE-DESCRIPTION'  (prints each qwenvl-result as a JSON "
                         "line; --stats: each qwenvl element's stats on stderr at the end)\n");
    return argc < 2 ? 2 : 0;
  }
  const bool stats = std::string(argv[1]) == "--stats";
  const std::string description = join_arguments(argc, argv, stats ? 2 : 1);

  GError* error = nullptr;
  GstParseContext* context = gst_parse_context_new();
  GstElement* pipeline = gst_parse_launch_full(description.c_str(), context, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  if (pipeline == nullptr || error != nullptr) {
    std::string detail = error != nullptr ? error->message : "could not build the pipeline";
    gchar** missing = gst_parse_context_get_missing_elements(context);
    if (error != nullptr && g_error_matches(error, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT) && missing != nullptr &&
        missing[0] != nullptr) {
      detail += " (missing element:";
      for (gchar** m = missing; *m != nullptr; ++m) detail += std::string(" ") + *m;
      detail += "; check GST_PLUGIN_PATH)";
    }
    g_strfreev(missing);
    std::fprintf(stderr, "qwenvl-launch: parse error: %s\n", detail.c_str());
    g_clear_error(&error);
    if (pipeline != nullptr) gst_object_unref(pipeline);
    gst_parse_context_free(context);
    return 1;
  }
  gst_parse_context_free(context);

  Run run;
  run.pipeline = pipeline;
  run.loop = g_main_loop_new(nullptr, FALSE);
  GstBus* bus = gst_element_get_bus(pipeline);
  gst_bus_add_watch(bus, on_bus_message, &run);
  const guint sigint_source = g_unix_signal_add(SIGINT, on_sigint, &run);

  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The element's own error message (if any) is on the bus: print it rather than a vague line.
    GstMessage* message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (message != nullptr) {
      print_error(message);
      gst_message_unref(message);
    } else {
      std::fprintf(stderr, "qwenvl-launch: the pipeline could not start playing\n");
    }
    run.failed = true;
  } else {
    g_main_loop_run(run.loop);
  }

  g_source_remove(sigint_source);
  if (!run.failed && run.failed_requests > 0 && run.answered == 0) {
    std::fprintf(stderr, "qwenvl-launch: every request failed (%llu, none answered)\n",
                 static_cast<unsigned long long>(run.failed_requests));
    run.failed = true;
  }
  if (stats) print_stats(pipeline);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  g_main_loop_unref(run.loop);
  return run.failed ? 1 : 0;
}
