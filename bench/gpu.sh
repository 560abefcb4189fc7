#!/usr/bin/env bash
# One prepared device run (see README "Benchmarks on a GPU"): our bench and PyTorch's timings
# of the same work on the same card, JSON into $OUT. Expects .gpu/ from ../shared/gpu/pack.sh.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bash .gpu/run.sh node --input-type=module -e "
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]); globalThis.navigator = { gpu };
const a = await gpu.requestAdapter();
console.log('adapter:', a.info.vendor, a.info.architecture, a.info.description);
console.log('features:', [...a.features].filter(f => /f16|subgroup|timestamp/.test(f)).join(' '));
process.exit(0);"
# BENCH_ARGS: repetitions for our side (default --quick); FILTER: a regex over case names.
timeout "${OURS_S:-150}" bash .gpu/run.sh npx tsx bench/run.ts ${BENCH_ARGS:---quick} ${FILTER:+--filter "$FILTER"} --json "$OUT/ours.json"
echo "ours: exit $?"
timeout "${TORCH_S:-60}" python3 bench/torch_ref.py ${TORCH_ARGS:---quick} --json "$OUT/torch.json"
echo "torch: exit $?"
