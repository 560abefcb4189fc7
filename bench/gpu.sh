#!/usr/bin/env bash
# One prepared device run (README "Benchmarks on a GPU"): the adapter, our seed-model training
# step, PyTorch's three arms of the same step on the same card (bench/torch_ref.py), and the
# comparison table (bench/compare.ts). Writes $OUT/ours.json, $OUT/torch.json, $OUT/compare.md.
# Needs .gpu/ from `bash ../shared/gpu/pack.sh` (run where npm ci ran); runs from any folder.
# Each part has its own time limit and a part that fails or times out keeps the others' files:
# ours.json is written before PyTorch starts, torch.json after each arm, and the comparison
# reads whatever is there.
# Environment:
#   STEPS      back-to-back steps per sample, one sync at the end, both sides (default 20)
#   ROUNDS     samples per case, both sides (default 5)
#   FILTER     our cases (regex; default the seed model's training steps)
#   BENCH_ARGS more arguments for bench/run.ts
#   TORCH_ARGS more arguments for torch_ref.py (default --only-step; empty: the op timings too)
#   OURS_S, TORCH_S, ARM_S  time limits in seconds: ours, all of PyTorch, one PyTorch arm
#   PYTHON     the Python with torch (default python3)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f .gpu/run.sh ] || { echo "gpu.sh: no .gpu/run.sh: run 'bash ../shared/gpu/pack.sh' in the checkout first" >&2; exit 1; }
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-5}

bash .gpu/run.sh node --input-type=module -e "
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]); globalThis.navigator = { gpu };
const a = await gpu.requestAdapter();
console.log('adapter:', a.info.vendor, a.info.architecture, a.info.description);
console.log('features:', [...a.features].filter(f => /f16|subgroup|timestamp/.test(f)).join(' '));
process.exit(0);"

timeout "${OURS_S:-240}" bash .gpu/run.sh npx tsx bench/run.ts --filter "${FILTER:-^(train_step|replay_step)\.seed\.}" \
  --reps "$ROUNDS" --steps "$STEPS" ${BENCH_ARGS:-} --json "$OUT/ours.json"
echo "ours: exit $?"

# A tuned arm whose torch.compile outlasts ARM_S is rerun eager (torch_ref.py records why).
timeout "${TORCH_S:-360}" "${PYTHON:-python3}" bench/torch_ref.py ${TORCH_ARGS---only-step} \
  --steps "$STEPS" --rounds "$ROUNDS" --arm-timeout "${ARM_S:-120}" --json "$OUT/torch.json"
echo "torch: exit $?"

bash .gpu/run.sh npx tsx bench/compare.ts "$OUT/ours.json" "$OUT/torch.json" --out "$OUT/compare.md"
