#!/usr/bin/env python3
"""End-to-end benchmark of `qcoder serve` over HTTP on 127.0.0.1 (standard library only).

Measures, with streamed /v1/completions requests on token-id prompts (exact lengths, EOS
ignored so every request generates exactly --max-tokens):
  * concurrency 1, 4, 16 (--concurrency): TTFT p50/p99, time per output token (TPOT) p50,
    inter-token latency p50/p99, aggregate generated tokens/s over the run's wall time;
  * prefix reuse: TTFT of a second turn that shares a --prefix-tokens prefix with the first and
    adds --suffix-tokens new ones (warm, served from the prefix cache), against the same-size
    request with nothing cached (cold).

Either point it at a running server (--url) or let it start one (--qcoder BIN --model DIR),
under --launcher if given (e.g. --launcher 'mpirun --oversubscribe -np 2' --server-args
'--parallel pipeline -t 1': docs/DISTRIBUTED.md).
The model folder needs tokenizer.json and a chat template; --tokenizer-from DIR copies them in
(e.g. ../shared/data/qwen3-coder next to bench/make_bench_model.py's output).

  python3 bench/make_bench_model.py --out build/bench-model          # the kernels benchmark model
  python3 bench/server_bench.py --qcoder build/apps/qcoder --model build/bench-model \\
      --tokenizer-from ../shared/data/qwen3-coder --json build/server-bench.json
"""
import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stream_completion(host, port, prompt_ids, max_tokens, timeout=3600):
    """One streamed completion; returns (t_start, [arrival time of each token chunk])."""
    body = json.dumps({"model": "bench", "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True}).encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    times, buf = [], b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        now = time.perf_counter()
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: "):
                continue
            data = ev[6:]
            if data == b"[DONE]":
                conn.close()
                return t0, times
            j = json.loads(data)
            if j.get("choices") and j["choices"][0].get("finish_reason") is None:
                times.append(now)
    conn.close()
    return t0, times


def random_prompt(rng, n):
    return [rng.randrange(1000, 150000) for _ in range(n)]


def run_concurrency(host, port, conc, prompt_tokens, max_tokens, requests_per_client, seed, url):
    rng = random.Random(seed)
    prompts = [[random_prompt(rng, prompt_tokens) for _ in range(requests_per_client)] for _ in range(conc)]
    results, errors = [], []
    lock = threading.Lock()

    def client(k):
        for p in prompts[k]:
            try:
                r = stream_completion(host, port, p, max_tokens)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(repr(e))

    m0 = metrics(url)
    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    m1 = metrics(url)
    busy = {k: m1.get(k, 0) - m0.get(k, 0) for k in ("qcoder_forward_seconds_total", "qcoder_sampling_seconds_total")}
    ttft = [times[0] - start for start, times in results if times]
    tpot = [(times[-1] - times[0]) / (len(times) - 1) for _, times in results if len(times) > 1]
    itl = [b - a for _, times in results for a, b in zip(times, times[1:])]
    tokens = sum(len(times) for _, times in results)
    return {"concurrency": conc, "requests": len(results), "errors": len(errors), "tokens": tokens,
            "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_ms": 1e3 * pct(ttft, 50), "ttft_p99_ms": 1e3 * pct(ttft, 99),
            "tpot_p50_ms": 1e3 * pct(tpot, 50), "itl_p50_ms": 1e3 * pct(itl, 50), "itl_p99_ms": 1e3 * pct(itl, 99),
            "forward_share": busy["qcoder_forward_seconds_total"] / wall,
            "sampling_share": busy["qcoder_sampling_seconds_total"] / wall}


def run_prefix(host, port, prefix_tokens, suffix_tokens, seed, reps):
    rng = random.Random(seed + 99)
    cold, warm = [], []
    for _ in range(reps):
        prefix = random_prompt(rng, prefix_tokens)
        # Cold: a prompt of the same size that shares nothing with anything sent before.
        s, t = stream_completion(host, port, random_prompt(rng, prefix_tokens + suffix_tokens), 1)
        cold.append(t[0] - s)
        # Turn 1 puts the prefix in the cache; turn 2 shares it and adds suffix_tokens new tokens.
        stream_completion(host, port, prefix + random_prompt(rng, suffix_tokens), 1)
        s, t = stream_completion(host, port, prefix + random_prompt(rng, suffix_tokens), 1)
        warm.append(t[0] - s)
    c, w = statistics.median(cold), statistics.median(warm)
    return {"prefix_tokens": prefix_tokens, "suffix_tokens": suffix_tokens, "cold_ttft_ms": 1e3 * c,
            "warm_ttft_ms": 1e3 * w, "warm_over_cold": w / c}


def metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--qcoder", help="qcoder binary: start a server with --model")
    ap.add_argument("--model")
    ap.add_argument("--tokenizer-from", help="copy tokenizer.json/tokenizer_config.json/chat_template.jinja from here")
    ap.add_argument("--server-args", default="", help="extra flags for qcoder serve")
    ap.add_argument("--launcher", default="",
                    help="start the server under this command, e.g. 'mpirun -np 2' (add --parallel MODE to --server-args)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--prefix-tokens", type=int, default=4096)
    ap.add_argument("--suffix-tokens", type=int, default=64)
    ap.add_argument("--prefix-reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    proc = None
    if not args.url:
        if not (args.qcoder and args.model):
            ap.error("give --url, or --qcoder and --model")
        if args.tokenizer_from:
            for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
                if not os.path.exists(os.path.join(args.model, f)):
                    shutil.copyfile(os.path.join(args.tokenizer_from, f), os.path.join(args.model, f))
        cmd = [*args.launcher.split(), args.qcoder, "serve", "-m", args.model, "--host", "127.0.0.1", "--port", "0", "--slots", "16",
               "--ctx-size", str(args.prefix_tokens + args.suffix_tokens + 256), *args.server_args.split()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        args.url = proc.stdout.readline().split()[-1]
        while True:
            try:
                with urllib.request.urlopen(args.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001
                if proc.poll() is not None:
                    sys.exit("qcoder serve exited")
                time.sleep(0.2)
    host, port = args.url.split("//")[1].split(":")
    port = int(port)
    out = {"url": args.url, "runs": []}
    try:
        stream_completion(host, port, random_prompt(random.Random(1), 16), 4)  # warm-up
        for c in [int(x) for x in args.concurrency.split(",")]:
            r = run_concurrency(host, port, c, args.prompt_tokens, args.max_tokens, args.requests_per_client,
                                args.seed + c, args.url)
            out["runs"].append(r)
            print(f"concurrency {c:2d}: {r['tokens_per_s']:8.2f} tok/s aggregate | TTFT p50 {r['ttft_p50_ms']:8.1f} ms"
                  f" p99 {r['ttft_p99_ms']:8.1f} | TPOT p50 {r['tpot_p50_ms']:7.1f} ms | ITL p50 {r['itl_p50_ms']:7.1f}"
                  f" p99 {r['itl_p99_ms']:7.1f} ms | {r['requests']} requests, {r['errors']} errors | forward pass"
                  f" {100 * r['forward_share']:.0f}% of the time, sampling {100 * r['sampling_share']:.1f}%", flush=True)
        base = out["runs"][0]["tokens_per_s"]
        for r in out["runs"]:
            r["speedup_vs_first"] = r["tokens_per_s"] / base
        if args.prefix_tokens > 0:
            p = run_prefix(host, port, args.prefix_tokens, args.suffix_tokens, args.seed, args.prefix_reps)
            out["prefix"] = p
            print(f"second turn sharing {p['prefix_tokens']} tokens + {p['suffix_tokens']} new: TTFT warm "
                  f"{p['warm_ttft_ms']:.1f} ms vs cold {p['cold_ttft_ms']:.1f} ms ({100 * p['warm_over_cold']:.1f}%)")
        m = metrics(args.url)
        out["max_batch"] = m.get("qcoder_running_batch_size_max")
        speedups = ", ".join("%d: %.2fx" % (r["concurrency"], r["speedup_vs_first"]) for r in out["runs"])
        print(f"largest running batch: {out['max_batch']:.0f}; aggregate tokens/s relative to concurrency "
              f"{out['runs'][0]['concurrency']}: {speedups}")
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
