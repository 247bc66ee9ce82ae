#!/usr/bin/env python3
"""Shows an application asking its own questions about a live video through qwenvl's `ask` action
signal: videotestsrc plays in real time into qwenvl, the main loop emits `ask` with a new question
every second, and the `result` signal hands back each answer, matched to its question by the request
id that `ask` returned. Every matched answer is printed as one JSON line (request_id, question, answer,
pts). Interval sampling is effectively off (one frame per hour), so only the application's questions
are asked. With the random-weight fixture model (tiny-a) the answers are gibberish.

Usage: pipelines/ask.py [MODEL]   (env: MODEL, BUILD, SECONDS_TO_RUN)
Needs PyGObject with GStreamer's introspection data (Debian: python3-gi gir1.2-gstreamer-1.0).
"""
import itertools
import json
import os
import sys
import threading
from pathlib import Path

repo = Path(__file__).resolve().parent.parent
build = Path(os.environ.get("BUILD", "build"))
if not build.is_absolute():
    build = repo / build
model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MODEL", str(build / "fixtures" / "models" / "tiny-a"))
seconds = int(os.environ.get("SECONDS_TO_RUN", "4"))
# The build tree's plugin, before GStreamer is initialised.
os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(filter(None, [str(build / "gst-plugin"), os.environ.get("GST_PLUGIN_PATH")]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
if not Path(model).is_dir():
    sys.exit(f"ask.py: model directory '{model}' not found (set MODEL or pass it)")

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

QUESTIONS = ["What is the main colour?", "Is anything moving?", "How many shapes are there?"]


def main() -> int:
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc is-live=true pattern=ball num-buffers={seconds * 10} "
        "! video/x-raw,width=64,height=64,framerate=10/1 "
        f"! qwenvl name=vl model=\"{model}\" interval=3600000000000 max-new-tokens=8 "
        "! fakesink sync=true")
    vl = pipeline.get_by_name("vl")
    asked = {}  # request id -> question, filled on the main thread, read on the streaming thread
    lock = threading.Lock()
    answered = []
    questions = itertools.cycle(QUESTIONS)

    def on_result(_element, answer):
        request_id = answer.get_uint64("request-id")[1]
        with lock:
            question = asked.get(request_id)
        if question is None:
            return  # the one interval answer: not ours
        line = {"request_id": request_id, "question": question, "answer": answer.get_string("text"),
                "pts": answer.get_uint64("pts")[1]}
        answered.append(request_id)
        print(json.dumps(line, ensure_ascii=False), flush=True)

    def ask_next():
        question = next(questions)
        with lock:  # held across emit: the answer cannot be looked up before its id is recorded
            request_id = vl.emit("ask", question)
            asked[request_id] = question
        return GLib.SOURCE_CONTINUE

    vl.connect("result", on_result)
    loop = GLib.MainLoop()
    status = {"error": None}

    def on_message(_bus, message):
        if message.type == Gst.MessageType.EOS:
            loop.quit()
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            status["error"] = f"{err.message} ({debug})"
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("ask.py: the pipeline did not start", file=sys.stderr)
        return 1
    GLib.timeout_add_seconds(1, ask_next)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if status["error"]:
        print(f"ask.py: {status['error']}", file=sys.stderr)
        return 1
    print(f"ask.py: {len(answered)} of {len(asked)} questions answered "
          "(a question asked after the last frame gets no answer)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
