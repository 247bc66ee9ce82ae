#!/usr/bin/env python3
"""A client of llama-server's POST /v1/chat/completions (standard library only, so it runs on the
GPU machine's python as on this one): one image as a base64 PNG data URI and one question.
  record: one non-streamed and one streamed answer; prints both and writes the raw response bodies
          (the JSON, the server-sent events) when --record-dir is given.
  record-stop: against a server started with --verbose: a stop string cut from the middle of the
          answer the question gets, then the same question streamed with that stop string; checks
          that the stream ends before it and that llama-server's __verbose names it, and writes the
          events (llama_server_recorded_stream_verbose_stop.sse) when --record-dir is given.
  bench:  batch-1 latency from the server's own timings, then frames/s with N requests at once
          (exactly --tokens new tokens each: n_predict plus ignore_eos, random weights end early).
"""
import argparse
import base64
import http.client
import json
import sys
import threading
import time
from pathlib import Path


def request_body(image_png, question, tokens, stream, ignore_eos, stop=None):
    data_uri = "data:image/png;base64," + base64.b64encode(image_png).decode()
    body = {
        "model": "qwenvl-fixture",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri}},
            {"type": "text", "text": question}]}],
        "max_tokens": tokens,
        "temperature": 0,
        "seed": 0,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if stop:
        body["stop"] = stop
    if ignore_eos:
        # llama-server's own fields (its /completion options are accepted here): exactly `tokens`,
        # and no reuse of an earlier request's KV (image included), which would skip vision and prefill.
        body["ignore_eos"] = True
        body["n_predict"] = tokens
        body["cache_prompt"] = False
    return json.dumps(body)


def post(host, port, body, timeout=600):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {raw[:500]!r}")
    return raw


def streamed_text(raw):
    text, finish = "", None
    for line in raw.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: "):])
        for choice in event.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
    return text, finish


def record(args, image):
    t0 = time.time()
    whole = post(args.host, args.port, request_body(image, args.question, args.tokens, False, args.ignore_eos))
    t1 = time.time()
    stream = post(args.host, args.port, request_body(image, args.question, args.tokens, True, args.ignore_eos))
    t2 = time.time()
    answer = json.loads(whole)
    text, finish = streamed_text(stream)
    print(f"non-streamed ({t1 - t0:.2f} s): finish={answer['choices'][0]['finish_reason']} "
          f"usage={answer.get('usage')} text={answer['choices'][0]['message']['content']!r}")
    print(f"streamed ({t2 - t1:.2f} s, {stream.count(b'data: ')} events): finish={finish} text={text!r}")
    print(f"server timings: {json.dumps(answer.get('timings'))}")
    if args.record_dir:
        out = Path(args.record_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "llama_server_recorded_response.json").write_bytes(whole)
        (out / "llama_server_recorded_stream.sse").write_bytes(stream)
        print(f"recorded: {out}/llama_server_recorded_response.json, llama_server_recorded_stream.sse")
    if not text or text != answer["choices"][0]["message"]["content"]:
        print("chat_client: streamed and non-streamed answers differ or are empty", file=sys.stderr)
        return 1
    return 0


def stop_word_of(text):
    """Three characters from the middle of `text` whose first occurrence is there: the answer to the
    same greedy request with that stop string is then exactly text[:k]."""
    for k in range(len(text) // 2, len(text) - 2):
        word = text[k:k + 3]
        if word.strip() and text.find(word) == k:
            return k, word
    raise RuntimeError(f"no stop string to cut from {text!r}")


def verbose_stop_word(raw):
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            verbose = json.loads(line[len("data: "):]).get("__verbose")
            if verbose and verbose.get("stop_type") == "word":
                return verbose.get("stopping_word")
    return None


def record_stop(args, image):
    whole = json.loads(post(args.host, args.port, request_body(image, args.question, args.tokens, False, False)))
    text = whole["choices"][0]["message"]["content"]
    k, word = stop_word_of(text)
    stream = post(args.host, args.port, request_body(image, args.question, args.tokens, True, False, [word]))
    cut, finish = streamed_text(stream)
    named = verbose_stop_word(stream)
    print(f"answer {text!r}; stop string {word!r} at {k}: streamed {cut!r}, finish={finish}, "
          f"__verbose stopping_word={named!r}")
    print("stop_string_json: " + json.dumps(word))
    if args.record_dir:
        out = Path(args.record_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "llama_server_recorded_stream_verbose_stop.sse").write_bytes(stream)
        print(f"recorded: {out}/llama_server_recorded_stream_verbose_stop.sse")
    if cut != text[:k] or finish != "stop" or named != word:
        print("chat_client: the stop string did not end the stream where expected, or __verbose does not name it",
              file=sys.stderr)
        return 1
    return 0


def bench(args, image):
    body = request_body(image, args.question, args.tokens, False, True)

    def one():
        answer = json.loads(post(args.host, args.port, body))
        assert answer["usage"]["completion_tokens"] == args.tokens, answer["usage"]
        return answer["timings"]

    one()  # warm-up
    singles = [one() for _ in range(args.repeats)]
    latency = sorted(t["prompt_ms"] + t["predicted_ms"] for t in singles)[len(singles) // 2]
    single = singles[0]
    rows = [{"parallel": 1, "latency_ms": latency, "frames_per_s": 1000.0 / latency,
             "prompt_ms": single["prompt_ms"], "predicted_ms": single["predicted_ms"]}]
    for n in args.parallel:
        errors = []

        def worker():
            try:
                one()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(str(e))
        threads = [threading.Thread(target=worker) for _ in range(n)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        if errors:
            print(f"parallel {n}: {len(errors)} failed: {errors[0]}", file=sys.stderr)
        rows.append({"parallel": n, "latency_ms": wall * 1000, "frames_per_s": (n - len(errors)) / wall})
    print(f"| parallel requests | wall ms (batch 1: server prompt+predicted ms, median of {args.repeats}) | frames/s |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['parallel']} | {r['latency_ms']:.1f} | {r['frames_per_s']:.2f} |")
    print(f"batch 1 split: prompt (image + text) {single['prompt_ms']:.1f} ms for {single['prompt_n']} tokens, "
          f"{args.tokens} new tokens {single['predicted_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["record", "record-stop", "bench"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--image", required=True, help="a PNG file")
    parser.add_argument("--question", default="Describe this image.")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ignore-eos", action="store_true", help="record: exactly --tokens new tokens")
    parser.add_argument("--record-dir")
    parser.add_argument("--parallel", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    image = Path(args.image).read_bytes()
    return {"record": record, "record-stop": record_stop, "bench": bench}[args.mode](args, image)


if __name__ == "__main__":
    sys.exit(main())
