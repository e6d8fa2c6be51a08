"""mlx-lm's own quantized KV cache (QuantizedKVCache, kv_bits 8 and 4, group 64) on every
committed parity fixture, summarised per checked row for kv_format_parity_test.cc.

For each fixture folder with ref/reference.safetensors, runs seq = ids ++ greedy[:G-1] in one
call with a QuantizedKVCache per layer (mlx-lm quantizes the keys/values of the call and runs
quantized_scaled_dot_product_attention over them; the same matmul emulation as
make_model_fixtures.py: Metal's float32 accumulation), and writes ref/kv_peer.json:
  {"mlx_version", "mlx_lm_version", "group_size": 64,
   "kv8"|"kv4": {"pI": {"err": [max |mlx - f64| / sigma per checked row],
                        "argmax": [mlx's argmax per checked row]}}}
Run with the pinned venv from the repository root:
  .venv/bin/python tests/reference/make_kv_peer_refs.py [fixture folders...]
"""
import json
import os
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import mlx_lm
from mlx_lm.models.cache import QuantizedKVCache
from mlx_lm.utils import load_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import Float32Accumulation  # noqa: E402

ROOT = Path("tests/fixtures/models")


def run(folder):
    model, _ = load_model(Path(folder))
    ref = mx.load(str(Path(folder) / "ref" / "reference.safetensors"))
    meta = json.load(open(Path(folder) / "ref" / "reference.json"))
    out = {"mlx_version": mx.__version__, "mlx_lm_version": mlx_lm.__version__, "group_size": 64}
    for bits in (8, 4):
        per = {}
        for p in meta["prompts"]:
            key = p["key"]
            ids = np.array(ref[key + ".ids"]).tolist()
            greedy = np.array(ref[key + ".greedy"]).tolist()
            pos = np.array(ref[key + ".positions"])
            f64 = np.array(ref[key + ".f64_logits"]).astype(np.float64)
            seq = ids + greedy[:-1]
            cache = [QuantizedKVCache(group_size=64, bits=bits) for _ in model.layers]
            with Float32Accumulation():
                logits = model(mx.array(seq, dtype=mx.int32)[None], cache=cache)
                mx.eval(logits)
            lg = np.array(logits.astype(mx.float32))[0][pos].astype(np.float64)
            sd = f64.std(axis=-1)
            per[key] = {"err": (np.abs(lg - f64).max(-1) / sd).tolist(),
                        "argmax": lg.argmax(-1).astype(int).tolist()}
        out[f"kv{bits}"] = per
    with open(Path(folder) / "ref" / "kv_peer.json", "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    e8 = np.concatenate([v["err"] for v in out["kv8"].values()])
    e4 = np.concatenate([v["err"] for v in out["kv4"].values()])
    print(f"{folder}: mlx-lm kv8 mean {e8.mean():.3e} max {e8.max():.3e}; "
          f"kv4 mean {e4.mean():.3e} max {e4.max():.3e}", file=sys.stderr)


def main():
    folders = sys.argv[1:] or sorted(str(d) for d in ROOT.iterdir()
                                     if (d / "ref" / "reference.safetensors").exists())
    for d in folders:
        run(d)


if __name__ == "__main__":
    main()
