"""Black-box tests of `qcoder serve` with the official openai client (and raw HTTP for the
error paths). The model has random weights: tests compare the server with itself (streamed vs
whole, with vs without stop strings) and force what they need with logit_bias and tool_choice."""
import json
import socket
import threading
import time
import urllib.request

import pytest

from conftest import Server

openai = pytest.importorskip("openai")

MSG = [{"role": "system", "content": "You are a coding assistant."},
       {"role": "user", "content": "Write a function that adds two numbers."}]
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
TOOL_CALL_END = 151658  # </tool_call>


def greedy(client, **kw):
    args = dict(model="anything", messages=MSG, temperature=0, max_tokens=12)
    args.update(kw)
    return client.chat.completions.create(**args)


def test_models_and_health(server, client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny-qwen"]
    assert models[0].model_extra["context_length"] == 2048
    assert server.request("GET", "/health") == (200, {"status": "ok"})


def test_chat_non_streamed(client):
    r = greedy(client)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    assert r.model == "tiny-qwen"
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason == "length"
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12
    assert greedy(client).choices[0].message.content == c.message.content  # deterministic at temperature 0


def test_all_roles_and_content_parts(client, server):
    msgs = [{"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "in Paris?"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {"role": "system", "content": "(late system note)"}]
    r = greedy(client, messages=msgs, tools=WEATHER, max_tokens=3)
    assert r.choices[0].finish_reason in ("length", "stop", "tool_calls")
    # Text parts are joined by newlines before the template sees them.
    joined = greedy(client, messages=[{"role": "user", "content": "Weather\nin Paris?"}], max_tokens=4)
    parts = greedy(client, messages=[{"role": "user", "content": [{"type": "text", "text": "Weather"},
                                                                  {"type": "text", "text": "in Paris?"}]}], max_tokens=4)
    assert parts.choices[0].message.content == joined.choices[0].message.content
    assert parts.usage.prompt_tokens == joined.usage.prompt_tokens


def test_chat_streamed_equals_whole_and_reports_usage(client):
    whole = greedy(client, max_completion_tokens=10, max_tokens=None)
    stream = greedy(client, max_tokens=10, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.id == chunks[0].id and ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finals = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    # The same prompt again: the prefix cache served it.
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])


def test_stop_strings_across_token_boundaries(client, server):
    base = greedy(client, max_tokens=16).choices[0].message.content
    ids = server.request("POST", "/tokenize", {"content": base})[1]["tokens"]
    pieces = [server.request("POST", "/detokenize", {"tokens": [i]})[1]["content"] for i in ids]
    # A stop string that starts inside token 3 and ends inside token 4 (when they are long enough).
    k = next(i for i in range(2, len(pieces) - 1) if len(pieces[i]) >= 2 and len(pieces[i + 1]) >= 1)
    start = len("".join(pieces[:k])) + len(pieces[k]) - 1
    stop = base[start:start + 2]
    want = base[:base.index(stop)]
    r = greedy(client, max_tokens=16, stop=[stop, "never-appears"])
    assert r.choices[0].message.content == want and r.choices[0].finish_reason == "stop"
    s = greedy(client, max_tokens=16, stop=stop, stream=True)
    chunks = list(s)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_logprobs_logit_bias_seed_and_n(client, server):
    r = greedy(client, max_tokens=5, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    assert len(lp) == 5
    for e in lp:
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token and e.logprob <= 0
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)
    hello = server.request("POST", "/tokenize", {"content": "Hello"})[1]["tokens"]
    assert len(hello) == 1
    r = greedy(client, max_tokens=3, logit_bias={str(hello[0]): 100})
    assert r.choices[0].message.content == "HelloHelloHello"
    a = greedy(client, temperature=1.0, seed=7, n=2, max_tokens=8)
    b = greedy(client, temperature=1.0, seed=7, n=2, max_tokens=8)
    assert [c.index for c in a.choices] == [0, 1]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.usage.completion_tokens == 16


def test_tool_call_forced_by_name(client):
    r = greedy(client, tools=WEATHER, tool_choice={"type": "function", "function": {"name": "get_weather"}},
               parallel_tool_calls=False, logit_bias={str(TOOL_CALL_END): 100}, max_tokens=20)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert len(c.message.tool_calls) == 1
    call = c.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {}


def test_tool_call_streamed_as_deltas(client):
    s = greedy(client, tools=WEATHER, tool_choice={"type": "function", "function": {"name": "get_weather"}},
               parallel_tool_calls=False, logit_bias={str(TOOL_CALL_END): 100}, max_tokens=20, stream=True)
    chunks = list(s)
    deltas = [tc for ch in chunks for tc in (ch.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function.name == "get_weather" and deltas[0].id.startswith("call_")
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_gives_text(client):
    r = greedy(client, tools=WEATHER, tool_choice="none", max_tokens=6)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "length"


def test_completions_fim_echo_logprobs_and_stream(client, server):
    prefix, suffix = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
    r = client.completions.create(model="x", prompt=prefix, suffix=suffix, max_tokens=6, temperature=0)
    fim = "<|fim_prefix|>" + prefix + "<|fim_suffix|>" + suffix + "<|fim_middle|>"
    ids = server.request("POST", "/tokenize", {"content": fim})[1]["tokens"]
    assert r.usage.prompt_tokens == len(ids)
    assert r.object == "text_completion" and r.choices[0].finish_reason == "length"
    # The same prompt as token ids, with echo and legacy logprobs.
    e = client.completions.create(model="x", prompt=ids, max_tokens=6, temperature=0, echo=True, logprobs=2)
    assert e.choices[0].text == fim + r.choices[0].text
    assert len(e.choices[0].logprobs.tokens) == 6 and len(e.choices[0].logprobs.top_logprobs[0]) == 2
    s = client.completions.create(model="x", prompt=prefix, suffix=suffix, max_tokens=6, temperature=0, stream=True,
                                  stream_options={"include_usage": True})
    chunks = list(s)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].usage.prompt_tokens == len(ids)


def test_bad_input_gets_openai_errors_and_the_server_keeps_serving(server, client):
    def err(status, body, param=None, path="/v1/chat/completions", raw=None):
        st, j = server.request("POST", path, body, raw=raw)
        assert st == status, j
        assert set(j["error"]) >= {"message", "type", "param", "code"}
        if param:
            assert j["error"]["param"] == param
        return j
    err(400, None, raw=b"{not json")
    err(400, None, raw=b"[1, 2]")
    err(400, {"messages": "hi"}, "messages")
    err(400, {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role")
    err(400, {"messages": MSG, "temperature": "hot"}, "temperature")
    err(400, {"messages": MSG, "temperature": 3}, "temperature")
    err(400, {"messages": MSG, "max_tokens": 0}, "max_tokens")
    err(400, {"messages": MSG, "n": 100}, "n")
    err(400, {"messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop")
    err(400, {"messages": MSG, "logit_bias": {"abc": 1}}, "logit_bias")
    err(400, {"messages": MSG, "top_logprobs": 2}, "top_logprobs")
    err(400, {"messages": MSG, "response_format": {"type": "json_object"}}, "response_format")
    err(400, {"messages": MSG, "tool_choice": "required"}, "tool_choice")
    err(400, {"messages": MSG, "stream_options": {"include_usage": True}}, "stream_options")
    j = err(400, {"prompt": list(range(100, 2200)), "max_tokens": 4}, path="/v1/completions")
    assert j["error"]["code"] == "context_length_exceeded"
    err(400, {"prompt": [1, 10**9]}, "prompt", path="/v1/completions")
    err(413, None, raw=b"{" + b" " * (9 << 20) + b"}")
    st, j = server.request("GET", "/v1/chat/completions")
    assert st == 405
    st, j = server.request("GET", "/v1/nothing")
    assert st == 404 and j["error"]["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="x", messages=MSG, temperature=-1)
    assert greedy(client, max_tokens=2).choices[0].finish_reason == "length"  # still serving
    m = server.metrics()
    assert m['qcoder_requests_total{endpoint="/v1/chat/completions",status="400"}'] >= 10


def test_tokenize_detokenize_and_metrics(server):
    st, j = server.request("POST", "/tokenize", {"content": "<|im_start|>hi", "add_special": True})
    assert st == 200 and j["tokens"][0] == 151644
    st, j2 = server.request("POST", "/tokenize", {"content": "<|im_start|>hi", "add_special": False})
    assert j2["tokens"][0] != 151644
    st, d = server.request("POST", "/detokenize", {"tokens": j["tokens"]})
    assert d == {"content": "<|im_start|>hi"}
    assert server.request("POST", "/detokenize", {"tokens": [-1]})[0] == 400
    m = server.metrics()
    for k in ("qcoder_time_to_first_token_seconds_count", "qcoder_inter_token_latency_seconds_count",
              "qcoder_queue_depth", "qcoder_running_batch_size", "qcoder_prefix_cache_hits_total",
              "qcoder_kv_blocks_total", "qcoder_generation_tokens_total"):
        assert k in m


def test_expert_use_and_weight_budget_metrics():
    s = Server("--ctx-size", "512", "--mem-budget", "64M", "--residency-refresh", "2")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        r = client.completions.create(model="x", prompt="def f(x):", max_tokens=6, temperature=0)
        m = s.metrics()
        routed = {k: v for k, v in m.items() if k.startswith("qcoder_expert_routed_total{")}
        assert routed and all('layer="' in k and 'expert="' in k for k in routed)
        layer0 = sum(v for k, v in routed.items() if 'layer="0"' in k)
        # Every token computed (the prompt, then each generated token but the last) picks k experts.
        k = 2
        assert layer0 == k * (r.usage.prompt_tokens + r.usage.completion_tokens - 1)
        assert m["qcoder_weight_budget_bytes"] == 64 * 1024 * 1024
        assert m["qcoder_weight_hot_uses_total"] + m["qcoder_weight_cold_uses_total"] >= layer0
    finally:
        s.stop()


def test_api_key_and_queue_limit():
    s = Server("--slots", "1", "--queue", "1", "--ctx-size", "512", api_key="sekrit")
    try:
        s.api_key = None
        st, j = s.request("GET", "/v1/models")
        assert st == 401 and j["error"]["code"] == "invalid_api_key"
        assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("GET", "/health")[0] == 200
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="sekrit", max_retries=0)
        assert good.models.list().data[0].id == "tiny-qwen"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="nope", max_retries=0).models.list()
        # One running, one waiting: the others get 429 at once.
        results = []

        def one():
            try:
                good.chat.completions.create(model="x", messages=MSG, max_tokens=150, temperature=0)
                results.append(200)
            except openai.RateLimitError:
                results.append(429)
        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(120)
        assert results.count(429) >= 1 and results.count(200) >= 2
    finally:
        assert s.stop() == 0


def test_sigterm_finishes_requests_in_flight_then_exits():
    s = Server("--ctx-size", "512")
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
    got = {}

    def run():
        stream = client.chat.completions.create(model="x", messages=MSG, max_tokens=60, temperature=0, stream=True)
        got["chunks"] = list(stream)
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    s.proc.send_signal(15)
    t.join(60)
    assert s.proc.wait(60) == 0, s.log()
    assert got["chunks"][-1].choices[0].finish_reason == "length"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1])), timeout=2)


def test_refuses_a_context_or_kv_budget_it_cannot_hold():
    import subprocess
    from conftest import model_dir, qcoder_bin
    base = [qcoder_bin(), "serve", "-m", model_dir(), "--port", "0", "-t", "1"]
    cases = [(["--kv-budget", "1000T"], "MemAvailable"),
             (["--kv-budget", "64K", "--ctx-size", "4096"], "raise --kv-budget")]
    for extra, expect in cases:
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, extra
        assert expect in r.stderr.strip().splitlines()[-1], (extra, r.stderr)
