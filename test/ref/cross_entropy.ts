// Float64 CPU reference for the fused log-softmax + cross-entropy (engine/cross_entropy.ts),
// with a max-shifted log-sum-exp so large logits stay finite.

/** float64 mean cross-entropy and its gradient for logits [B, K, S], targets [B, S]. */
export function refCrossEntropy(logits: Float32Array, targets: ArrayLike<number>, b: number, k: number, s: number): { loss: number; grad: Float64Array } {
  let total = 0;
  const grad = new Float64Array(logits.length);
  for (let bi = 0; bi < b; bi++) {
    for (let si = 0; si < s; si++) {
      const at = (c: number) => bi * k * s + c * s + si;
      let m = -Infinity;
      for (let c = 0; c < k; c++) m = Math.max(m, logits[at(c)]);
      let sum = 0;
      for (let c = 0; c < k; c++) sum += Math.exp(logits[at(c)] - m);
      const lse = m + Math.log(sum);
      const tg = targets[bi * s + si];
      total += lse - logits[at(tg)];
      for (let c = 0; c < k; c++) grad[at(c)] = (Math.exp(logits[at(c)] - lse) - (c === tg ? 1 : 0)) / (b * s);
    }
  }
  return { loss: total / (b * s), grad };
}
