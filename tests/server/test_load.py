"""Bounded load and batching tests on 127.0.0.1: many concurrent clients (streamed and not,
some hanging up mid-stream) get exactly what they get alone, nothing leaks, and the running
batch really grows."""
import json
import random
import socket
import threading
import time

import pytest

from conftest import Server

openai = pytest.importorskip("openai")

PROMPTS = [f"Task {i}: " + " ".join(["implement", "a", "parser", "for", "json", "in", "C++"][: 2 + i % 6]) * (1 + i % 3)
           for i in range(12)]


def ask(client, prompt, stream, max_tokens=16, **kw):
    args = dict(model="m", messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=max_tokens,
                extra_body={"cache_prompt": False}, **kw)
    if not stream:
        return client.chat.completions.create(**args).choices[0].message.content
    return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **args)
                   if c.choices)


def hang_up_mid_stream(url, prompt):
    """Starts a long streamed request over a raw socket, reads a little, then closes."""
    host, port = url.split("//")[1].split(":")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 400,
                       "stream": True}).encode()
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    return got.startswith(b"HTTP/1.1 200")


def test_batch_invariance_and_batch_size():
    s = Server("--slots", "16", "--prefill-chunk", "32", "--batch-tokens", "96", "--ctx-size", "2048")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=120)
        long_prompt = "Refactor this code: " + "x = x + 1; " * 150  # several prefill chunks
        prompts = PROMPTS + [long_prompt] + PROMPTS[:3]
        alone = [ask(client, p, False, max_tokens=24) for p in prompts]
        assert len(set(alone)) > 8  # the prompts really give different outputs
        together = [None] * len(prompts)

        def one(i):
            together[i] = ask(client, prompts[i], i % 2 == 0, max_tokens=24)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert together == alone
        m = s.metrics()
        assert m["qcoder_running_batch_size_max"] >= 8, m["qcoder_running_batch_size_max"]
    finally:
        assert s.stop() == 0
    # Another thread count gives the same tokens.
    s1 = Server("--slots", "4", "-t", "1", "--ctx-size", "2048")
    try:
        client = openai.OpenAI(base_url=s1.url + "/v1", api_key="x", max_retries=0, timeout=120)
        assert [ask(client, p, False, max_tokens=24) for p in prompts[:4]] == alone[:4]
    finally:
        assert s1.stop() == 0


def test_load_many_clients_with_disconnects():
    # A small prefix cache, so that it is full (and evicting) before RSS is first measured.
    s = Server("--slots", "16", "--queue", "256", "--ctx-size", "2048", "--kv-budget", "64M", "--prefix-cache", "2M")
    try:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=300)
        reference = {p: ask(client, p, False) for p in PROMPTS}
        errors, mismatches, hangups = [], [], [0]
        lock = threading.Lock()

        def worker(k, rounds):
            rng = random.Random(k)
            for r in range(rounds):
                p = rng.choice(PROMPTS)
                try:
                    if k % 6 == 5 and r == 0:
                        if hang_up_mid_stream(s.url, p):
                            with lock:
                                hangups[0] += 1
                        continue
                    got = ask(client, p, rng.random() < 0.5)
                    if got != reference[p]:
                        with lock:
                            mismatches.append((p, got))
                except Exception as e:  # noqa: BLE001 - every failure counts
                    with lock:
                        errors.append(repr(e))

        def round_of(clients, rounds):
            ts = [threading.Thread(target=worker, args=(k, rounds)) for k in range(clients)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(300)

        round_of(34, 2)  # warm-up: the KV pool and buffers reach their working size
        rss_warm, file_warm = s.rss_kib(), s.rss_kib("RssFile")
        t0 = time.time()
        round_of(34, 2)
        elapsed = time.time() - t0
        rss_end, file_end = s.rss_kib(), s.rss_kib("RssFile")
        assert not errors, errors[:5]
        assert not mismatches, mismatches[:3]
        assert hangups[0] >= 5
        time.sleep(0.5)
        m = s.metrics()
        assert not [k for k in m if k.startswith("qcoder_requests_total") and "status=\"5" in k and "/health" not in k], m
        assert m["qcoder_client_disconnects_total"] >= hangups[0]
        assert m["qcoder_running_batch_size"] == 0 and m["qcoder_queue_depth"] == 0
        # Only the prefix cache still holds KV blocks: every finished or cancelled sequence freed its own.
        block_bytes = (m["qcoder_prefix_cache_bytes"] / max(1, m["qcoder_kv_blocks_used"])) if m["qcoder_kv_blocks_used"] else 0
        assert m["qcoder_kv_blocks_used"] == 0 or block_bytes > 0
        assert rss_end <= rss_warm * 1.05 + 4 * 1024, (rss_warm, rss_end)
        print(f"\nload: 34 clients x 2 rounds in {elapsed:.1f} s, anonymous RSS {rss_warm} -> {rss_end} KiB "
              f"(mapped weights {file_warm} -> {file_end} KiB), "
              f"{hangups[0]} hang-ups, max batch {m['qcoder_running_batch_size_max']:.0f}")
    finally:
        assert s.stop() == 0
