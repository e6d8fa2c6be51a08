#!/usr/bin/env python3
"""Prints one prompt of a parity fixture: `ids` or mlx-lm's `greedy` continuation, comma-separated.

Standard library only (the demo runs without the reference venv).
usage: fixture_tokens.py MODEL_DIR PROMPT_KEY {ids,greedy}
"""
import json
import struct
import sys


def main():
    folder, key, field = sys.argv[1:4]
    with open(f"{folder}/ref/reference.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[f"{key}.{field}"]
        assert info["dtype"] == "I32"
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        data = f.read(end - begin)
    print(",".join(str(v) for v in struct.unpack(f"<{len(data) // 4}i", data)))


if __name__ == "__main__":
    main()
