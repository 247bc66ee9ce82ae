#!/usr/bin/env python3
"""qwenvl-server answering the official OpenAI Python client (pinned in scripts/requirements-clients.txt).

The server runs on the tiny fixtures (its own process, QWENVL_SERVER); each image case of
transformers' reference (OUT/reference/cli/MODEL/*.json whose args hold no --video) is asked through
client.chat.completions.create, whole and streamed, and must give transformers' text, generated ids
(vLLM's return_token_ids, read from the objects' extra fields) and prompt tokens; a stop string
given as create(stop=[...]) ends the answer before it with finish_reason "stop" and vLLM's
stop_reason naming it, whole and streamed; an unknown model is the client's NotFoundError. Prints one
line per case; exits 1 on the first difference.
"""
import base64
import json
import os
import pathlib
import subprocess
import sys

import openai

FIXTURES = pathlib.Path(os.environ["QWENVL_FIXTURES"])
SERVER = os.environ["QWENVL_SERVER"]


def image_part(path: pathlib.Path) -> dict:
    media = "image/png" if path.suffix == ".png" else "image/jpeg"
    data = base64.b64encode(path.read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}


def request_of(reference: dict, model: str):
    """The reference's CLI arguments as create() keyword arguments; None for a case with a video."""
    args = reference["args"]
    content, system, kwargs, extra = [], None, {}, {"return_token_ids": True}
    prompt = None
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "--image":
            content.append(image_part(FIXTURES / value))
        elif flag == "--video":
            return None
        elif flag == "--prompt":
            prompt = value
        elif flag == "--system":
            system = value
        elif flag == "--temperature":
            kwargs["temperature"] = float(value)
        elif flag == "--top-p":
            kwargs["top_p"] = float(value)
        elif flag == "--max-new-tokens":
            kwargs["max_tokens"] = int(value)
        elif flag == "--seed":
            kwargs["seed"] = int(value)
        elif flag == "--stop":
            kwargs.setdefault("stop", []).append(value)
        elif flag in ("--top-k", "--min-p", "--repetition-penalty"):
            extra[flag[2:].replace("-", "_")] = int(value) if flag == "--top-k" else float(value)
        else:
            raise SystemExit(f"test_openai_client: reference flag {flag} has no mapping here; add it")
    content.append({"type": "text", "text": prompt})
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return dict(model=model, messages=messages, extra_body=extra, **kwargs)


def extra_field(obj, name):
    return (obj.model_extra or {}).get(name)


def check(case: str, what: str, got, want) -> None:
    if got != want:
        print(f"{case}: {what}: got {got!r}, want {want!r}")
        sys.exit(1)


def check_stop_string(client, case: str, request: dict, text: str) -> None:
    """stop=[...] with a letter from the middle of the known answer: the answer ends before it."""
    letters = [i for i in range(len(text) // 2, len(text)) if text[i].isascii() and text[i].isalnum()]
    if not letters:
        print(f"{case}: no letter in the second half of the answer to stop at")
        return
    stop = text[letters[0]]
    request = dict(request, stop=["never in the answer", stop])
    whole = client.chat.completions.create(**request).choices[0]
    check(case, "finish_reason at a stop string", whole.finish_reason, "stop")
    check(case, "stop_reason", extra_field(whole, "stop_reason"), stop)
    check(case, "text before the stop string", whole.message.content, text[:text.index(stop)])
    streamed, finish, stop_reason = "", None, None
    for chunk in client.chat.completions.create(stream=True, **request):
        for c in chunk.choices:
            streamed += c.delta.content or ""
            if c.finish_reason is not None:
                finish, stop_reason = c.finish_reason, extra_field(c, "stop_reason")
    check(case, "streamed finish_reason at a stop string", finish, "stop")
    check(case, "streamed stop_reason", stop_reason, stop)
    check(case, "streamed text before the stop string", streamed, text[:text.index(stop)])
    print(f"{case}: stop={stop!r} -> finish_reason 'stop', stop_reason {stop!r}, whole and streamed")


def run_model(model: str) -> int:
    server = subprocess.Popen([SERVER, "--model", str(FIXTURES / "models" / model), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # "qwenvl-server: serving NAME on http://127.0.0.1:PORT"
        if not line:
            raise SystemExit("qwenvl-server ended before serving: " + server.stderr.read())
        client = openai.OpenAI(base_url=line.split()[-1] + "/v1", api_key="unused", max_retries=0, timeout=120)
        cases = 0
        for path in sorted((FIXTURES / "reference" / "cli" / model).glob("*.json")):
            reference = json.loads(path.read_text())
            request = request_of(reference, model)
            if request is None:
                continue
            case = f"{model}/{path.stem}"
            whole = client.chat.completions.create(**request)
            choice = whole.choices[0]
            check(case, "text", choice.message.content, reference["text"])
            check(case, "token_ids", extra_field(choice, "token_ids"), reference["token_ids"])
            check(case, "prompt_tokens", whole.usage.prompt_tokens, reference["prompt_tokens"])

            text, ids, usage = "", [], None
            for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request):
                for c in chunk.choices:
                    text += c.delta.content or ""
                    ids += extra_field(c, "token_ids") or []
                usage = chunk.usage or usage
            check(case, "streamed text", text, reference["text"])
            check(case, "streamed token_ids", ids, reference["token_ids"])
            check(case, "streamed usage", usage.prompt_tokens if usage else None, reference["prompt_tokens"])
            print(f"{case}: transformers' answer, whole and streamed")
            check_stop_string(client, case, request, reference["text"])
            cases += 1
        try:
            client.chat.completions.create(model="not-served", messages=[{"role": "user", "content": "hi"}])
            raise SystemExit(f"{model}: an unknown model was answered")
        except openai.NotFoundError as e:
            print(f"{model}: unknown model -> {type(e).__name__} ({e.status_code})")
        return cases
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    print(f"openai {openai.__version__}")
    cases = sum(run_model(m) for m in ("tiny-a", "tiny-b"))
    if cases == 0:
        print("no image cases in the reference")
        return 1
    print(f"{cases} cases answered as transformers answers them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
