#!/usr/bin/env python3
"""qcoder's tokenizer vs Hugging Face tokenizers (pinned 0.23.2), one thread each, same run.

Encodes at least --min-mb of real source code (the Python standard library's .py files on this
machine; the venv's site-packages are added if that is not enough), file by file, with both;
checks that every id is identical; reports load time, encode MB/s (median of --runs) and memory.

  make build && .venv/bin/python bench/tokenizer_bench.py [--runs 5] [--bin PATH] [--cpu N]

Hugging Face is measured through its Python binding with RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false: `encode` (what transformers calls per text) and `encode_batch_fast`
(the whole corpus in one call, no offsets: its fastest path). Both processes are pinned to one
CPU (--cpu, default the last one) so that they see the same core.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402  (after the thread settings)
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def corpus(min_bytes):
    """Sorted .py files that are valid UTF-8, from the system Python's library first."""
    dirs = sorted(glob.glob("/usr/lib/python3.*")) + [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]]
    files, texts, total, seen = [], [], 0, set()
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "**", "*.py"), recursive=True)):
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            with open(real, "rb") as f:
                raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            files.append(real)
            texts.append(text)
            total += len(raw)
        if total >= min_bytes:
            break
    return files, texts, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "tests", "tokenizer", "tokenizer_bench"))
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "tokenizer", "fixtures", "qwen3-coder"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--min-mb", type=float, default=10.0)
    ap.add_argument("--cpu", type=int, default=None, help="pin both to this CPU (default: the last one)")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"tokenizer_bench: {args.bin} not built (make build)")
    cpus = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else cpus[-1]
    os.sched_setaffinity(0, {cpu})

    files, texts, total = corpus(int(args.min_mb * 1e6))
    if total < args.min_mb * 1e6:
        sys.exit(f"tokenizer_bench: only {total} bytes of .py files found")
    tok_json = os.path.join(args.model, "tokenizer.json")

    # Hugging Face: load, encode per file, encode_batch_fast over all.
    rss0 = rss_bytes()
    load, load_cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        hf = Tokenizer.from_file(tok_json)
        load.append(time.perf_counter() - t0)
        load_cpu.append(time.thread_time() - c0)
    hf_rss = rss_bytes() - rss0
    # Wall and thread CPU time (with parallelism off the Rust code runs on the calling thread).
    enc, enc_cpu, hf_ids = [], [], None
    for r in range(args.runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = [hf.encode(t, add_special_tokens=False).ids for t in texts]
        enc.append(time.perf_counter() - t0)
        enc_cpu.append(time.thread_time() - c0)
        if r == 0:
            hf_ids = out
    fast, fast_cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        hf.encode_batch_fast(texts, add_special_tokens=False)
        fast.append(time.perf_counter() - t0)
        fast_cpu.append(time.thread_time() - c0)

    # qcoder, in its own process on the same CPU.
    with tempfile.TemporaryDirectory() as tmp:
        lst = os.path.join(tmp, "files.txt")
        with open(lst, "w") as f:
            f.write("\n".join(files) + "\n")
        ids_out = os.path.join(tmp, "ids.bin")
        res = subprocess.run([args.bin, "-m", args.model, "--list", lst, "--runs", str(args.runs), "--ids-out", ids_out],
                             capture_output=True, text=True, check=True)
        q = json.loads(res.stdout)
        import array
        qids = array.array("i")
        with open(ids_out, "rb") as f:
            qids.frombytes(f.read())
    flat = [i for ids in hf_ids for i in ids]
    mismatched_files, pos = 0, 0
    for ids in hf_ids:
        if list(qids[pos:pos + len(ids)]) != ids:
            mismatched_files += 1
        pos += len(ids)
    exact = len(qids) == len(flat) and mismatched_files == 0

    hf_mbps = total / statistics.median(enc) / 1e6
    fast_mbps = total / statistics.median(fast) / 1e6
    hf_cpu_mbps = total / statistics.median(enc_cpu) / 1e6
    fast_cpu_mbps = total / statistics.median(fast_cpu) / 1e6
    report = {
        "corpus": {"files": len(files), "bytes": total, "ids": len(flat), "source": os.path.dirname(files[0])},
        "cpu": cpu,
        "tokenizers_version": tokenizers.__version__,
        "hf_load_ms_median": round(statistics.median(load) * 1e3, 1),
        "hf_encode_mb_per_s_median": round(hf_mbps, 2),
        "hf_encode_batch_fast_mb_per_s_median": round(fast_mbps, 2),
        "hf_load_cpu_ms_median": round(statistics.median(load_cpu) * 1e3, 1),
        "hf_encode_cpu_mb_per_s_median": round(hf_cpu_mbps, 2),
        "hf_encode_batch_fast_cpu_mb_per_s_median": round(fast_cpu_mbps, 2),
        "hf_rss_after_load_bytes": hf_rss,
        "qcoder": q,
        "exact": exact,
        "mismatched_files": mismatched_files,
        "ratio_vs_hf_encode": round(q["mb_per_s_median"] / hf_mbps, 2),
        "ratio_vs_hf_encode_batch_fast": round(q["mb_per_s_median"] / fast_mbps, 2),
        "cpu_ratio_vs_hf_encode": round(q["cpu_mb_per_s_median"] / hf_cpu_mbps, 2),
        "cpu_ratio_vs_hf_encode_batch_fast": round(q["cpu_mb_per_s_median"] / fast_cpu_mbps, 2),
    }
    print(f"corpus: {len(files)} files, {total / 1e6:.2f} MB of .py, {len(flat)} ids; one thread on CPU {cpu}; "
          f"medians of {args.runs} runs")
    print(f"{'':28}{'load ms':>9}{'(cpu)':>8}{'MB/s':>9}{'(cpu)':>8}{'RSS after load':>16}")
    print(f"{'HF tokenizers ' + tokenizers.__version__ + ' encode':28}{report['hf_load_ms_median']:>9}"
          f"{report['hf_load_cpu_ms_median']:>8}{hf_mbps:>9.2f}{hf_cpu_mbps:>8.2f}{hf_rss / 2**20:>12.1f} MiB")
    print(f"{'HF encode_batch_fast':28}{'':>17}{fast_mbps:>9.2f}{fast_cpu_mbps:>8.2f}")
    print(f"{'qcoder':28}{q['load_ms_median']:>9}{q['load_cpu_ms_median']:>8}{q['mb_per_s_median']:>9.2f}"
          f"{q['cpu_mb_per_s_median']:>8.2f}{q['rss_tokenizer_bytes'] / 2**20:>12.1f} MiB")
    print(f"qcoder / HF encode: {report['ratio_vs_hf_encode']}x wall, {report['cpu_ratio_vs_hf_encode']}x cpu; "
          f"/ encode_batch_fast: {report['ratio_vs_hf_encode_batch_fast']}x wall, "
          f"{report['cpu_ratio_vs_hf_encode_batch_fast']}x cpu; ids identical: {exact}")
    print(json.dumps(report))
    if not exact:
        sys.exit("tokenizer_bench: ids differ from Hugging Face")


if __name__ == "__main__":
    main()
