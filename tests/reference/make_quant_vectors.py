#!/usr/bin/env python3
"""Writes tests/fixtures/quant/quant_vectors.safetensors: MLX-quantized test matrices with
MLX's own dequantization, for tests/kernels/quant_ref_test.cc.

Run with the pinned reference venv (tests/reference/requirements.txt):
    .venv/bin/python tests/reference/make_quant_vectors.py [--out PATH]

For every case NAME the file holds
    NAME.weight   U32 [rows, cols*bits/32]  packed, exactly as mx.quantize returns it
    NAME.scales   affine: dtype of the weights (BF16, F16 or F32); mx*/nv*: U8
    NAME.biases   affine only, same dtype as scales
    NAME.dequant  F32 [rows, cols]  mx.dequantize in float32. For affine, scales and biases are
                  cast to float32 first, so the expectation is scale*q + bias in float32 and is
                  not rounded back to bf16. For mx*/nv*, mx.dequantize(..., dtype=float32).
    NAME.x        F32 [3, cols]  an input batch
    NAME.y        F32 [3, rows]  X @ dequant.T computed in float64 numpy, stored as float32
and the metadata key "cases" lists {"name", "mode", "bits", "group_size", "rows", "cols",
"scales_dtype", "raw"?} as JSON. Cases with "raw": true (mxfp4_raw, mxfp8_raw, nvfp4_raw) are
random packed codes with every scale byte 0..255, not mx.quantize output, and have no .x/.y.

Every matrix has an all-negative group (row 0, group 0), an all-zero group (row 1, last
group: affine scale -1e-7 rounded, bias 0; mx modes scale byte 0 = 2^-127) and, where a row
has two groups, an all-positive group (row 2, group 1: negative scale, bias = the group max).
Random groups give both signs of scale as well.
The mx/nv matrices scale whole rows over a wide range of magnitudes so the E8M0 / E4M3
scale bytes span their range (including E4M3 subnormals for nvfp4).
"""

import argparse
import json
import os

import mlx.core as mx
import numpy as np

N_TOKENS = 3


def make_weights(rng, rows, cols, group, row_mags):
    w = rng.standard_normal((rows, cols)).astype(np.float32) * 0.05
    w *= np.asarray(row_mags, dtype=np.float32)[:rows, None]
    # An all-negative group (no zero crossing; MLX's CPU quantizer uses the true max here,
    # unlike the Metal kernel, whose running max starts at 0).
    w[0, :group] = -np.abs(w[0, :group]) - 0.01 * row_mags[0]
    # An all-zero group.
    w[1, cols - group:] = 0.0
    # An all-positive group where one exists.
    if rows > 2 and cols // group > 1:
        w[2, group:2 * group] = np.abs(w[2, group:2 * group]) + 0.01 * row_mags[2]
    return w


def np_unpack_affine(wq, bits, cols):
    """Independent numpy decode of the little-endian bit stream (sanity check only)."""
    by = np.ascontiguousarray(wq).view(np.uint8).reshape(wq.shape[0], -1)
    stream = np.unpackbits(by, axis=1, bitorder="little")[:, : cols * bits]
    q = stream.reshape(wq.shape[0], cols, bits).astype(np.uint32)
    return (q << np.arange(bits, dtype=np.uint32)).sum(-1).astype(np.float32)


def add_case(out, cases, rng, name, mode, bits, group, rows, cols, wdtype, row_mags):
    w_np = make_weights(rng, rows, cols, group, row_mags)
    w = mx.array(w_np).astype(wdtype)
    if mode == "affine":
        wq, scales, biases = mx.quantize(w, group_size=group, bits=bits, mode="affine")
        deq = mx.dequantize(wq, scales.astype(mx.float32), biases.astype(mx.float32),
                            group_size=group, bits=bits, mode="affine")
        # Sanity: the float32 expectation is plain scale*q + bias (no fma).
        q = np_unpack_affine(np.array(wq), bits, cols)
        s = np.repeat(np.array(scales.astype(mx.float32)), group, axis=1)
        b = np.repeat(np.array(biases.astype(mx.float32)), group, axis=1)
        plain = (s * q).astype(np.float32) + b
        assert np.array_equal(plain.view(np.uint32), np.array(deq).view(np.uint32)), name
    else:
        wq, scales = mx.quantize(w, group_size=group, bits=bits, mode=mode)
        biases = None
        deq = mx.dequantize(wq, scales, None, group_size=group, bits=bits, mode=mode,
                            dtype=mx.float32)
    assert wq.dtype == mx.uint32 and deq.dtype == mx.float32
    x_np = rng.standard_normal((N_TOKENS, cols)).astype(np.float32)
    deq_np = np.array(deq)
    y_np = (x_np.astype(np.float64) @ deq_np.astype(np.float64).T).astype(np.float32)

    out[f"{name}.weight"] = wq
    out[f"{name}.scales"] = scales
    if biases is not None:
        out[f"{name}.biases"] = biases
    out[f"{name}.dequant"] = deq
    out[f"{name}.x"] = mx.array(x_np)
    out[f"{name}.y"] = mx.array(y_np)
    cases.append({"name": name, "mode": mode, "bits": bits, "group_size": group,
                  "rows": rows, "cols": cols, "scales_dtype": str(scales.dtype)})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "fixtures", "quant", "quant_vectors.safetensors")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()

    rng = np.random.default_rng(20250601)
    out, cases = {}, []
    mags = [1.0, 0.7, 1.3, 2.0, 0.4]
    # Affine: every bit width MLX accepts (1 is accepted by MLX 0.32.4 too) x every group size.
    for bits in [1, 2, 3, 4, 5, 6, 8]:
        for group in [32, 64, 128]:
            rows = 5 if bits % 2 else 3
            cols = 256 if (bits + group // 32) % 2 else 128
            add_case(out, cases, rng, f"affine_b{bits}_g{group}", "affine", bits, group,
                     rows, cols, mx.bfloat16, mags)
    # Float32 and float16 scales/biases.
    add_case(out, cases, rng, "affine_b4_g64_f32", "affine", 4, 64, 5, 256, mx.float32, mags)
    add_case(out, cases, rng, "affine_b6_g32_f16", "affine", 6, 32, 3, 128, mx.float16, mags)
    # Microscaling float modes, rows spread over many binades.
    add_case(out, cases, rng, "mxfp4_g32", "mxfp4", 4, 32, 5, 256, mx.bfloat16,
             [1.0, 1e-25, 20.0, 1e25, 3e-3])
    add_case(out, cases, rng, "mxfp8_g32", "mxfp8", 8, 32, 5, 256, mx.bfloat16,
             [1.0, 1e-25, 20.0, 1e25, 3e-3])
    add_case(out, cases, rng, "nvfp4_g16", "nvfp4", 4, 16, 5, 256, mx.bfloat16,
             [1.0, 0.4, 100.0, 5000.0, 3.0])

    # Raw mx/nv cases: random packed codes and every one of the 256 scale bytes (E8M0 0 =
    # 2^-127 and 255 = NaN; E4M3 0x7f/0xff = NaN), dequantized by MLX. Products may overflow
    # to inf; no .x/.y for these.
    for mode, group, bits in [("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)]:
        cols = 1024
        rows = 256 * group // cols
        name = f"{mode}_raw"
        wq = mx.array(rng.integers(0, 2**32, (rows, cols * bits // 32), dtype=np.uint64)
                      .astype(np.uint32))
        scales = mx.array(rng.permutation(256).astype(np.uint8).reshape(rows, cols // group))
        deq = mx.dequantize(wq, scales, None, group_size=group, bits=bits, mode=mode,
                            dtype=mx.float32)
        out[f"{name}.weight"] = wq
        out[f"{name}.scales"] = scales
        out[f"{name}.dequant"] = deq
        cases.append({"name": name, "mode": mode, "bits": bits, "group_size": group,
                      "rows": rows, "cols": cols, "scales_dtype": "uint8", "raw": True})

    mx.eval(out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    mx.save_safetensors(args.out, out, metadata={
        "cases": json.dumps(cases),
        "mlx_version": mx.__version__,
        "generator": "tests/reference/make_quant_vectors.py",
    })
    print(f"wrote {args.out}: {len(cases)} cases, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
