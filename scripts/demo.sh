#!/usr/bin/env bash
# The main job on the model bundled in the repo: inspect it, then generate greedily and set
# the result beside mlx-lm's greedy continuation of the same prompt.
set -euo pipefail
qcoder=$1
model=$2
cat <<MSG
== qcoder demo on $model
   This bundled model has RANDOM weights (a tiny qwen3_moe that mlx-lm built and MLX quantized
   to 4 bits), so its tokens mean nothing. It shows loading, the forward pass and generation
   end to end, and that qcoder continues a prompt exactly as mlx-lm does.
MSG
echo "== qcoder inspect -m $model"
"$qcoder" inspect -m "$model"
ids=$(python3 scripts/fixture_tokens.py "$model" p2 ids)
want=$(python3 scripts/fixture_tokens.py "$model" p2 greedy)
echo "== qcoder generate -m $model --ids <fixture prompt p2, $(tr , "\n" <<<"$ids" | wc -l) tokens> -n 32 --json"
out=$("$qcoder" generate -m "$model" --ids "$ids" -n 32 --json)
echo "$out"
got=$(python3 -c 'import json,sys; print(",".join(map(str, json.loads(sys.argv[1])["ids"])))' "$out")
echo "mlx-lm greedy: [$want]"
if [[ "$got" == "$want" ]]; then echo "qcoder and mlx-lm agree on all 32 greedy tokens"; else echo "qcoder differs from mlx-lm (see make test for the parity statistics)"; fi
