"""Float64 references that model qcoder's KV cache storage, for kv_format_parity_test.cc.

The float64 reference of ref/reference.safetensors keeps keys/values in float64, so it cannot
hold a bf16 (or quantized) KV cache to the engine core's 5e-3 sigma gate: the rounding of the
stored keys/values alone moves the logits by more. As quantized weights are handled (the
reference uses exactly the dequantized weights), the reference here uses exactly the stored
keys/values: tests/reference/f64_forward.py with kv_store="bf16" / "q8" (post-RoPE keys and
values rounded as qcoder's cache stores them; everything else float64).

For every committed fixture folder with ref/reference.safetensors, runs the same sequences
(seq = ids ++ greedy[:G-1]) and writes, next to the existing (unchanged) reference files,
ref/kv_<fmt>.safetensors (fmt: bf16 on every fixture; q8 and q4 on the fixtures whose products
qcoder runs on float32 activations, the only ones kv_format_parity_test.cc gates them on: keep
the committed files small) with, for each prompt key pI:
  pI.f64_logits F32 [R, V]: the logits at pI.positions (the checked rows), as float32;
  pI.f64_routes I32 [num_layers, R, top_k]: the experts picked there (sorted, -1 dense).
metadata: {"kv_store": fmt, "generator": this script}.
Run with the pinned venv from the repository root:
  .venv/bin/python tests/reference/make_kv_format_refs.py [--formats bf16,q8,q4] [fixture folders...]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import f64_forward  # noqa: E402

ROOT = Path("tests/fixtures/models")


def run(folder, formats):
    W = f64_forward.load_weights(folder)
    ref = mx.load(str(Path(folder) / "ref" / "reference.safetensors"))
    keys = sorted({k.split(".")[0] for k in ref})
    for fmt in formats:
        t0 = time.time()
        tensors, errs = {}, []
        for key in keys:
            ids = np.array(ref[key + ".ids"]).tolist()
            greedy = np.array(ref[key + ".greedy"]).tolist()
            pos = np.array(ref[key + ".positions"])
            lg, rt = f64_forward.forward(W, ids + greedy[:-1], kv_store=fmt)
            tensors[f"{key}.f64_logits"] = mx.array(lg[pos].astype(np.float32))
            tensors[f"{key}.f64_routes"] = mx.array(np.ascontiguousarray(rt[:, pos, :]))
            base = np.array(ref[key + ".f64_logits"]).astype(np.float64)
            errs.append(np.abs(lg[pos] - base).max(-1) / base.std(-1))
        out = Path(folder) / "ref" / f"kv_{fmt}.safetensors"
        mx.save_safetensors(str(out), tensors,
                            metadata={"kv_store": fmt, "generator": "tests/reference/make_kv_format_refs.py"})
        e = np.concatenate(errs)
        print(f"{folder} kv {fmt}: |ref_{fmt} - ref_f64| max {e.max():.3e} mean {e.mean():.3e} sigma "
              f"({time.time() - t0:.1f} s)", file=sys.stderr)


def float_activations(folder):
    """Whether qcoder runs the fixture's products on float32 activations (float weights, mxfp8)
    rather than int16 ones (affine, mxfp4, nvfp4: kernels/ops.h PreparedActs)."""
    with open(Path(folder) / "config.json") as f:
        q = json.load(f).get("quantization")
    return q is None or q.get("mode", "affine") == "mxfp8"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=None,
                    help="comma-separated kv_store values; default: bf16 on every fixture, plus "
                         "q8,q4 on the float-activation ones (the only ones the test gates them on)")
    ap.add_argument("folders", nargs="*")
    a = ap.parse_args()
    folders = a.folders or sorted(str(d) for d in ROOT.iterdir()
                                  if (d / "ref" / "reference.safetensors").exists())
    for d in folders:
        if a.formats:
            formats = a.formats.split(",")
        else:
            formats = ["bf16", "q8", "q4"] if float_activations(d) else ["bf16"]
        run(d, formats)


if __name__ == "__main__":
    main()
