#!/usr/bin/env python3
"""Reference renderings for qcoder's Jinja interpreter, made by Python jinja2 in transformers'
chat-template environment (transformers.utils.chat_template_utils).

  jinja_reference.py cases < cases.json > results.json
      cases: [{"template": str, "vars": {...}}]; results: [{"output": str} | {"error": {"type", "message"}}]
      Each template is compiled by transformers' _compile_jinja_template (trim_blocks,
      lstrip_blocks, loopcontrols, tojson = json.dumps, raise_exception, strftime_now, ...).

  jinja_reference.py chat --n N --seed S --templates DIR --tokenizer-config FILE > cases.jsonl
      Generates N random conversations and renders each with every template in DIR the way
      apply_chat_template(tokenize=False) does (message normalization, special tokens), after
      the server-side normalization (JSON-string tool arguments parsed, null content -> "").
      Each line: {"id", "template", "request", "rendered" | "error"}.
"""
import argparse
import copy
import json
import os
import random
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import warnings  # noqa: E402

warnings.filterwarnings("ignore")
from transformers.utils import chat_template_utils as ctu  # noqa: E402


def error_of(e):
    return {"type": type(e).__name__, "message": str(e)}


def run_cases():
    cases = json.load(sys.stdin)
    out = []
    for c in cases:
        try:
            tmpl = ctu._compile_jinja_template(c["template"])
        except Exception as e:  # syntax errors
            out.append({"error": error_of(e)})
            continue
        try:
            out.append({"output": tmpl.render(**c.get("vars", {}))})
        except Exception as e:
            out.append({"error": error_of(e)})
    json.dump(out, sys.stdout, ensure_ascii=False)


# ---------------------------------------------------------------- random conversations

TEXTS = [
    "Hello!", "", " ", "  leading and trailing  ", "\n\nnewlines around\n\n", "multi\nline\ntext",
    "tabs\tand\r\nCRLF", "unicode: 日本語 中文 한국어 العربية עִבְרִית", "emoji 😀👍🏽🇫🇷 1️⃣ 👨‍👩‍👧",
    "combining e\u0301 and NFD", "quotes ' \" `backticks`", "backslash \\ and \\n literal",
    "{{ not a template }} {% neither %}", "<|im_start|>user\nfake<|im_end|>", "<tool_call>\n<function=x>\n</tool_call>",
    "<think>\nhidden\n</think>\n\nvisible", "\u001c\u001dseparators\u001e\u001f", "\u0085next line\u2028ls\u2029ps",
    "\ufeffBOM start", "\u00a0nbsp\u00a0", "\u3000ideographic space\u3000", "x" * 300,
    "def f(x):\n    return x * 2\n", "SELECT * FROM t WHERE a < 5 AND b > 'x';", "&amp; <b>html</b>",
    "null", "None", "True", "0", "-1.5e-07",
]
NAMES = ["get_weather", "run_shell_command", "write_file", "search", "计算器", "tool_ñ", "a", "x-y", "do.thing"]
PARAM_NAMES = ["city", "unit", "command", "path", "content", "query", "limit", "flag", "items", "type",
               "description", "名前", "opt-1", "$ref", "with space", "nested"]


def rand_scalar(r):
    return r.choice([True, False, None, 0, 1, -7, 42, 2.5, 1.0, 1e-07, 1e100, -0.0, 123456789012,
                     2 ** 62, "text", "", "ü", "line\nbreak", 3.14159, 1e16, 1e15, 0.0001, 0.00001])


def rand_json(r, depth=0):
    k = r.random()
    if depth > 2 or k < 0.5:
        return rand_scalar(r)
    if k < 0.75:
        return [rand_json(r, depth + 1) for _ in range(r.randint(0, 3))]
    return {r.choice(PARAM_NAMES): rand_json(r, depth + 1) for _ in range(r.randint(0, 3))}


def rand_schema(r, depth=0):
    t = r.choice(["string", "integer", "number", "boolean", "array", "object", ["string", "null"], None, "enum"])
    s = {}
    if t == "enum":
        s["type"] = "string"
        s["enum"] = r.choice([["celsius", "fahrenheit"], ["a", 1, None, True, 2.5], ["日本", "ü"]])
    elif t is not None:
        s["type"] = t
    if r.random() < 0.7:
        s["description"] = r.choice(TEXTS[:12])
    if t == "array" and depth < 2:
        s["items"] = rand_schema(r, depth + 1)
    if t == "object" and depth < 2:
        s["properties"] = {r.choice(PARAM_NAMES): rand_schema(r, depth + 1) for _ in range(r.randint(0, 3))}
        if r.random() < 0.5:
            s["required"] = list(s["properties"])[:1]
        if r.random() < 0.3:
            s["additionalProperties"] = False
    if t is None and r.random() < 0.5:
        s["anyOf"] = [{"type": "string"}, {"type": "null"}]
    for key in ("default", "minimum", "maximum", "const", "examples", "format"):
        if r.random() < 0.12:
            s[key] = rand_json(r, 1) if key != "format" else "date-time"
    return s


def rand_tool(r):
    fn = {"name": r.choice(NAMES)}
    if r.random() < 0.85:
        fn["description"] = r.choice(TEXTS[:14])
    if r.random() < 0.9:
        params = {"type": "object", "properties": {}}
        for _ in range(r.randint(0, 4)):
            params["properties"][r.choice(PARAM_NAMES)] = rand_schema(r)
        if r.random() < 0.6:
            params["required"] = list(params["properties"])[: r.randint(0, 2)]
        if r.random() < 0.2:
            params["$defs"] = {"Thing": {"type": "object", "properties": {"id": {"type": "integer"}}}}
        if r.random() < 0.2:
            params["additionalProperties"] = r.choice([False, True])
        fn["parameters"] = params
    if r.random() < 0.15:
        fn["return"] = r.choice([{"type": "string"}, "a string", 5])
    if r.random() < 0.15:
        fn["strict"] = r.choice([True, False])
    return r.choice([{"type": "function", "function": fn}, {"type": "function", "function": fn}, fn])


def rand_arguments(r):
    args = {r.choice(PARAM_NAMES): rand_json(r) for _ in range(r.randint(0, 4))}
    if r.random() < 0.4:
        return json.dumps(args, ensure_ascii=r.random() < 0.5)
    return args


def rand_tool_call(r):
    fn = {"name": r.choice(NAMES), "arguments": rand_arguments(r)}
    call = {"id": "call_%d" % r.randint(0, 999), "type": "function", "function": fn}
    return r.choice([call, call, {"function": fn}, fn])


def rand_message(r, role):
    m = {"role": role}
    if role == "assistant":
        if r.random() < 0.45:
            m["tool_calls"] = [rand_tool_call(r) for _ in range(r.randint(1, 3))]
            m["content"] = r.choice([None, "", "Let me check.", "  padded content \n", TEXTS[r.randrange(len(TEXTS))]])
        else:
            m["content"] = r.choice(TEXTS)
        if r.random() < 0.2:
            m["reasoning_content"] = r.choice(["thinking about it", "\nsteps\n", ""])
    elif role == "tool":
        m["content"] = r.choice(TEXTS + [None, '{"temp": 21.5}'])
        if r.random() < 0.7:
            m["tool_call_id"] = "call_1"
    else:
        m["content"] = r.choice(TEXTS + ([None] if r.random() < 0.1 else []))
    return m


def rand_conversation(r):
    msgs = []
    if r.random() < 0.5:
        msgs.append({"role": "system", "content": r.choice(TEXTS)})
    n = r.randint(1, 8)
    for i in range(n):
        role = r.choice(["user", "user", "assistant", "assistant", "tool", "tool", "system", "developer"])
        if i == 0 and r.random() < 0.8:
            role = "user"
        msgs.append(rand_message(r, role))
        if role == "tool" and r.random() < 0.5:
            msgs.append(rand_message(r, "tool"))
    req = {"messages": msgs}
    k = r.random()
    if k < 0.55:
        req["tools"] = [rand_tool(r) for _ in range(r.randint(1, 4))]
    elif k < 0.65:
        req["tools"] = []
    elif k < 0.75:
        req["tools"] = None
    if r.random() < 0.8:
        req["add_generation_prompt"] = r.random() < 0.7
    if r.random() < 0.2:
        req["chat_template_kwargs"] = {"enable_thinking": r.choice([True, False])}
    return req


def server_normalize(messages):
    out = []
    for m in copy.deepcopy(messages):
        if "content" in m and m["content"] is None:
            m["content"] = ""
        for call in m.get("tool_calls") or []:
            fn = call["function"] if isinstance(call.get("function"), dict) else call
            if isinstance(fn.get("arguments"), str):
                try:
                    parsed = json.loads(fn["arguments"])
                    if isinstance(parsed, dict):
                        fn["arguments"] = parsed
                except ValueError:
                    pass
        out.append(m)
    return out


def render_like_apply_chat_template(template, req, special_tokens):
    messages = ctu._normalize_chat_messages(server_normalize(req["messages"]))
    kwargs = {**special_tokens, **req.get("chat_template_kwargs", {})}
    rendered, _ = ctu.render_jinja_template(
        conversations=[messages], tools=req.get("tools"), documents=None, chat_template=template,
        add_generation_prompt=req.get("add_generation_prompt", False), **kwargs)
    return rendered[0]


def run_chat(args):
    config = json.load(open(args.tokenizer_config))
    special = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        v = config.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            special[key] = v
    templates = sorted(f for f in os.listdir(args.templates) if f.endswith(".jinja"))
    r = random.Random(args.seed)
    for i in range(args.n):
        req = rand_conversation(r)
        for name in templates:
            template = open(os.path.join(args.templates, name), encoding="utf-8").read()
            row = {"id": "gen-%04d" % i, "template": name, "request": req}
            try:
                row["rendered"] = render_like_apply_chat_template(template, req, special)
            except Exception as e:
                row["error"] = error_of(e)
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cases")
    c = sub.add_parser("chat")
    c.add_argument("--n", type=int, default=200)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--templates", required=True)
    c.add_argument("--tokenizer-config", required=True)
    args = p.parse_args()
    if args.cmd == "cases":
        run_cases()
    else:
        run_chat(args)


if __name__ == "__main__":
    main()
