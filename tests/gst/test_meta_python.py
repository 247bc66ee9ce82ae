#!/usr/bin/env python3
"""GstQwenVLMeta read from Python (PyGObject, Debian's python3-gi and gir1.2-gstreamer-1.0).

Runs videotestsrc ! qwenvl (tiny-a fixture, sync mode, greedy) ! fakesink, reads every meta from a
pad probe on fakesink's sink pad with Gst.Buffer.get_custom_meta("GstQwenVLMeta"), and checks that
each meta's fields agree with the qwenvl-result bus message of the same request (same request-id):
text, prompt, stream id, pts, latency, ttft, token counts, finish reason, token ids and the alert
flag (alert-when=regex:^ makes every answer an alert, each with its qwenvl-alert message). Also that
the meta rides on the very buffer asked about (sync mode). Exits non-zero on any disagreement.
Run by meson test (QWENVL_FIXTURES, GST_PLUGIN_PATH set by tests/gst/meson.build).
"""
import os
import sys
import warnings

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

FIELDS_STR = ["text", "prompt", "stream-id", "finish-reason"]
FIELDS_U64 = ["request-id", "pts", "latency", "ttft"]
FIELDS_INT = ["prompt-tokens", "generated-tokens"]
FIELDS_BOOL = ["alert"]


def token_ids(structure):
    # token-ids is a GstValueArray of ints; get_array reads it without gst-python's overrides, as a
    # GObject.ValueArray (deprecated by GLib, hence the filter; python3-gst-1.0 offers get_value).
    ok, array = structure.get_array("token-ids")
    if not ok:
        raise AssertionError("no token-ids in %s" % structure.to_string())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [array.get_nth(i) for i in range(array.n_values)]


def fields(structure):
    out = {}
    for name in FIELDS_STR:
        out[name] = structure.get_string(name)
    for name in FIELDS_U64:
        ok, value = structure.get_uint64(name)
        out[name] = value if ok else None
    for name in FIELDS_INT:
        ok, value = structure.get_int(name)
        out[name] = value if ok else None
    for name in FIELDS_BOOL:
        ok, value = structure.get_boolean(name)
        out[name] = value if ok else None
    out["token-ids"] = token_ids(structure)
    return out


def main():
    fixtures = os.environ.get("QWENVL_FIXTURES")
    if not fixtures or not os.path.isdir(fixtures):
        print("QWENVL_FIXTURES is unset or missing: run through meson test", file=sys.stderr)
        return 1
    model = os.path.join(fixtures, "models", "tiny-a")
    Gst.init(None)
    if Gst.ElementFactory.find("qwenvl") is None:
        print("no qwenvl element: GST_PLUGIN_PATH must name the build tree's gst-plugin", file=sys.stderr)
        return 1

    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=4 ! video/x-raw,format=RGB,width=64,height=48,framerate=10/1 "
        '! qwenvl model="%s" stream-id=py mode=sync temperature=0 max-new-tokens=5 interval=200000000 '
        'alert-when="regex:^" ! fakesink name=sink' % model)

    metas = []  # (buffer pts, fields)

    def probe(pad, info):
        buffer = info.get_buffer()
        meta = buffer.get_custom_meta("GstQwenVLMeta")
        if meta is not None:
            metas.append((buffer.pts, fields(meta.get_structure())))
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)

    messages = []
    alerts = []  # request ids of the qwenvl-alert messages
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    failure = None
    while True:
        msg = bus.timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
        if msg is None:
            failure = "timed out waiting for EOS"
            break
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            failure = "pipeline error: %s (%s)" % (err.message, debug)
            break
        if msg.type == Gst.MessageType.EOS:
            break
        structure = msg.get_structure()
        if structure.get_name() == "qwenvl-result":
            messages.append(fields(structure))
        elif structure.get_name() == "qwenvl-alert":
            alerts.append(structure.get_uint64("request-id")[1])
    pipeline.set_state(Gst.State.NULL)
    if failure:
        print(failure, file=sys.stderr)
        return 1

    # Frames at 0, 100, 200, 300 ms with a 200 ms interval: asked at 0 and 200 ms.
    errors = []
    if len(metas) != 2 or len(messages) != 2:
        errors.append("expected 2 metas and 2 messages, got %d and %d" % (len(metas), len(messages)))
    by_id = {m["request-id"]: m for m in messages}
    for pts, meta in metas:
        message = by_id.get(meta["request-id"])
        if message is None:
            errors.append("meta of request %s has no message" % meta["request-id"])
            continue
        if meta != message:
            errors.append("meta %r differs from message %r" % (meta, message))
        if meta["pts"] != pts:
            errors.append("meta pts %s rides on the buffer at %s" % (meta["pts"], pts))
        if meta["stream-id"] != "py" or not meta["token-ids"] or meta["generated-tokens"] != len(meta["token-ids"]):
            errors.append("implausible meta %r" % meta)
        if meta["alert"] is not True:
            errors.append("meta of request %s: alert is %r, not True (alert-when=regex:^)" % (meta["request-id"], meta["alert"]))
    if sorted(alerts) != sorted(by_id):
        errors.append("qwenvl-alert messages for requests %s, results for %s" % (sorted(alerts), sorted(by_id)))
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print("%d metas agree with their qwenvl-result messages" % len(metas))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
