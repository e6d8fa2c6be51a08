"""KV-cache quantization vectors from MLX itself: what mlx-lm's QuantizedKVCache stores.

mlx-lm (models/cache.py, QuantizedKVCache.update_and_fetch) quantizes each new key/value row
with mx.quantize(x, group_size, bits) along head_dim, in the activation dtype (bf16 for these
models). For each case this writes:
  <case>.x       F32 [rows, n]  the input (bf16 values, upcast exactly)
  <case>.q       U8  [rows, n]  the unsigned levels (unpacked from mx.quantize's uint32 words)
  <case>.scales  BF16 [rows, n/group], <case>.biases BF16 [rows, n/group]
  <case>.deq     F32 [rows, n]  mx.dequantize of the same, upcast
Run with the pinned venv: .venv/bin/python tests/reference/make_kv_quant_vectors.py
"""
import json
import sys

import mlx.core as mx
import numpy as np

OUT = "tests/fixtures/quant/kv_quant_vectors.safetensors"


def unpack(w, bits, n):
    w = np.array(w).astype(np.uint32)
    per = 32 // bits
    mask = (1 << bits) - 1
    out = np.zeros((w.shape[0], n), dtype=np.uint8)
    for j in range(per):
        out[:, j::per] = ((w >> (j * bits)) & mask).astype(np.uint8)
    return out


def main():
    rng = np.random.default_rng(8)
    tensors = {}
    cases = []
    for bits in (8, 4):
        for group in (32, 64, 128):
            n = 256
            rows = [rng.standard_normal(n) * s for s in (1.0, 0.01, 30.0)]
            rows.append(np.abs(rng.standard_normal(n)))          # all positive
            rows.append(-np.abs(rng.standard_normal(n)))         # all negative
            rows.append(np.zeros(n))                             # all zero (q0 == 0)
            r = rng.standard_normal(n); r[::7] = 0.0; rows.append(r)
            r = np.round(rng.standard_normal(n) * 4) / 4; rows.append(r)  # ties likely
            x = mx.array(np.stack(rows).astype(np.float32)).astype(mx.bfloat16)
            w, s, b = mx.quantize(x, group_size=group, bits=bits)
            deq = mx.dequantize(w, s, b, group_size=group, bits=bits)
            name = f"q{bits}_g{group}"
            cases.append(name)
            tensors[name + ".x"] = np.array(x.astype(mx.float32))
            tensors[name + ".q"] = unpack(w, bits, n)
            tensors[name + ".scales"] = np.array(s.astype(mx.float32))
            tensors[name + ".biases"] = np.array(b.astype(mx.float32))
            tensors[name + ".deq"] = np.array(deq.astype(mx.float32))
    # Written by hand (safetensors' numpy writer has no bf16): scales/biases as F32 holding
    # exact bf16 values.
    header = {"__metadata__": {"mlx_version": mx.__version__, "cases": json.dumps(cases)}}
    blobs, off = [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}[a.dtype]
        raw = a.tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(OUT, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for raw in blobs:
            f.write(raw)
    print(f"wrote {OUT}: {len(cases)} cases, {off} bytes of data", file=sys.stderr)


if __name__ == "__main__":
    main()
