#!/usr/bin/env python3
"""Drive the official `anthropic` Python SDK against the gateway and check expectations.

Run by the Rust end-to-end tests (tollgate_tests::sdk) with the project venv's python, so
`cargo test` covers it; also usable by hand:

    .venv/bin/python tests/python/sdk_check.py --base-url http://127.0.0.1:10000 \
        --auth-token "$(scripts/dev-token.sh)" \
        --cases '[{"name":"hello","stream":true,"expect":{"ok":true}}]'

Each case (JSON object):
    name        a label for the report
    kind        "messages" (default), "count_tokens" or "models"
    stream      true: the SDK's streaming helper (messages.stream); false: messages.create
    prompt      the user message (default "Say hello.")
    model       default "claude-sonnet-4-5"
    max_tokens  default 256
    system      optional system prompt
    expect      either {"ok": true, "text_contains": "...", "text_not_contains": ["..."],
                        "text_equals": "..."}
                or     {"error": "AuthenticationError", "status": 401,
                        "error_type": "authentication_error", "message_contains": "..."}
                ("error" names the SDK exception class or any of its base classes).

Prints one JSON line per case ({"name", "ok", "detail", "text"?}) and exits 1 if any case
did not meet its expectation, 2 on bad usage.
"""

import argparse
import json
import sys

import anthropic


def run_case(client, case):
    kind = case.get("kind", "messages")
    model = case.get("model", "claude-sonnet-4-5")
    if kind == "models":
        page = client.models.list()
        return {"text": " ".join(m.id for m in page.data)}
    messages = [{"role": "user", "content": case.get("prompt", "Say hello.")}]
    kwargs = {"model": model, "messages": messages}
    if "system" in case:
        kwargs["system"] = case["system"]
    if kind == "count_tokens":
        result = client.messages.count_tokens(**kwargs)
        return {"text": str(result.input_tokens)}
    kwargs["max_tokens"] = case.get("max_tokens", 256)
    if case.get("stream", False):
        with client.messages.stream(**kwargs) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return {"text": text, "stop_reason": final.stop_reason}
    message = client.messages.create(**kwargs)
    text = "".join(block.text for block in message.content if block.type == "text")
    return {"text": text, "stop_reason": message.stop_reason}


def class_names(exc):
    return [cls.__name__ for cls in type(exc).__mro__]


def check(case, outcome, exc):
    expect = case.get("expect", {"ok": True})
    if "error" in expect:
        if exc is None:
            return False, f"expected {expect['error']}, got success: {outcome!r}"
        if expect["error"] not in class_names(exc):
            return False, f"expected {expect['error']}, got {type(exc).__name__}: {exc}"
        status = getattr(exc, "status_code", None)
        if "status" in expect and status != expect["status"]:
            return False, f"expected status {expect['status']}, got {status}"
        body = getattr(exc, "body", None)
        err = body.get("error", {}) if isinstance(body, dict) else {}
        if "error_type" in expect and err.get("type") != expect["error_type"]:
            return False, f"expected error type {expect['error_type']}, got body {body!r}"
        if "message_contains" in expect and expect["message_contains"] not in str(err.get("message", "")):
            return False, f"expected message containing {expect['message_contains']!r}, got {body!r}"
        return True, f"{type(exc).__name__} status={status}"
    if exc is not None:
        return False, f"expected success, got {type(exc).__name__}: {exc}"
    text = outcome.get("text", "")
    if "text_equals" in expect and text != expect["text_equals"]:
        return False, f"text {text!r} != {expect['text_equals']!r}"
    if "text_contains" in expect and expect["text_contains"] not in text:
        return False, f"text {text!r} lacks {expect['text_contains']!r}"
    for bad in expect.get("text_not_contains", []):
        if bad in text:
            return False, f"text contains {bad!r}"
    if expect.get("nonempty", True) and text == "":
        return False, "empty text"
    return True, "ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--auth-token")
    parser.add_argument("--cases", required=True, help="JSON list, or @FILE")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    raw = args.cases
    if raw.startswith("@"):
        with open(raw[1:], encoding="utf-8") as f:
            raw = f.read()
    try:
        cases = json.loads(raw)
        assert isinstance(cases, list) and all(isinstance(c, dict) for c in cases)
    except (ValueError, AssertionError):
        print("--cases must be a JSON list of objects", file=sys.stderr)
        return 2
    client = anthropic.Anthropic(
        base_url=args.base_url,
        api_key=args.api_key,
        auth_token=args.auth_token,
        max_retries=0,
        timeout=args.timeout,
    )
    failed = 0
    for case in cases:
        outcome, exc = {}, None
        try:
            outcome = run_case(client, case)
        except anthropic.APIError as e:  # every error the SDK maps from HTTP
            exc = e
        except Exception as e:  # noqa: BLE001 - reported as a mismatch, not a crash
            exc = e
        ok, detail = check(case, outcome, exc)
        failed += 0 if ok else 1
        print(json.dumps({"name": case.get("name", "?"), "ok": ok, "detail": detail, **outcome}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
