#!/usr/bin/env python3
"""Writes tests/reference/yarn_reference.json: transformers' YaRN inverse frequencies and
attention factor for a few configs, the reference of tests/model/rope_scaling_test.cc.

Each case is the committed 480B config.json (tests/fixtures/configs) with head_dim, rope_theta,
max_position_embeddings and a rope_scaling block replaced, loaded the way transformers loads a
checkpoint (Qwen3MoeConfig.from_dict, which standardizes rope_scaling into rope_parameters) and
passed to ROPE_INIT_FUNCTIONS["yarn"] (_compute_yarn_parameters). transformers computes the
frequencies in float32; they are stored as the float32 values (exact in JSON).

Needs transformers with the August 2025 fix of huggingface/transformers#38224 (PR #40320: the
explicit factor is kept even when original_max_position_embeddings is present; 5.x has it) and
torch (CPU is enough). The pinned .venv has no torch, so run it from a separate venv:

  python3 -m venv /tmp/yarn-venv
  /tmp/yarn-venv/bin/pip install torch transformers==5.24.0
  /tmp/yarn-venv/bin/python tests/reference/make_yarn_reference.py
"""
import copy
import json
import os
import sys

import torch
import transformers
from transformers import Qwen3MoeConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, "tests/fixtures/configs/qwen3-coder-480b-a35b-4bit/config.json")
OUT = os.path.join(ROOT, "tests/reference/yarn_reference.json")

# name, head_dim, rope_theta, max_position_embeddings, rope_scaling block
CASES = [
    # Qwen's 1M recipe on the unchanged config: before the #38224 fix transformers replaced
    # factor 4 by 262144 / 262144 = 1 here (no scaling at all).
    ("qwen3-coder-1m", 128, 1e7, 262144,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 262144}),
    # The same with max_position_embeddings raised to 1M (old and new transformers agree).
    ("qwen3-coder-1m-maxpos", 128, 1e7, 1048576,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 262144}),
    # The fixture models' shape (head_dim 64, 4096 positions), factor 2, old-style "type" key.
    ("fixture-d64-f2", 64, 1e7, 4096,
     {"type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096}),
    # Qwen2.5/Qwen3 dense style: theta 1e6, 32K x 8, custom betas, no truncation.
    ("d128-f8-betas-notrunc", 128, 1e6, 32768,
     {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32768,
      "beta_fast": 16, "beta_slow": 2, "truncate": False}),
    # DeepSeek-style attention factor from mscale / mscale_all_dim.
    ("d128-f40-mscale", 128, 1e4, 163840,
     {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
      "mscale": 1.0, "mscale_all_dim": 0.707}),
    # An explicit attention_factor.
    ("d128-f4-attention-factor", 128, 1e7, 262144,
     {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 262144,
      "attention_factor": 1.25}),
]


def main():
    with open(BASE) as f:
        base = json.load(f)
    cases = []
    for name, head_dim, theta, max_pos, block in CASES:
        d = copy.deepcopy(base)
        d.update(head_dim=head_dim, rope_theta=theta, max_position_embeddings=max_pos,
                 rope_scaling=copy.deepcopy(block))
        config = Qwen3MoeConfig.from_dict(d)
        inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
        assert inv_freq.dtype == torch.float32 and inv_freq.shape == (head_dim // 2,)
        cases.append({
            "name": name,
            "head_dim": head_dim,
            "rope_theta": theta,
            "max_position_embeddings": max_pos,
            "rope_scaling": block,
            "inv_freq": [float(x) for x in inv_freq.tolist()],
            "attention_factor": float(attention_factor),
        })
    out = {
        "generator": "tests/reference/make_yarn_reference.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "function": "transformers.modeling_rope_utils._compute_yarn_parameters (float32 inv_freq)",
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
