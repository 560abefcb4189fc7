// Float64 CPU reference for Adam (engine/optim.ts): PyTorch's torch.optim.Adam update rule,
// single-tensor path, with L2 weight decay added to the gradient.

export interface RefAdam {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
}

/** One parameter's value, moments and step count, updated in float64. */
export class RefAdamParam {
  step = 0;
  m: Float64Array;
  v: Float64Array;
  constructor(public p: Float64Array) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }
  update(gIn: ArrayLike<number>, o: RefAdam): void {
    this.step++;
    const bc1 = 1 - o.b1 ** this.step;
    const bc2 = 1 - o.b2 ** this.step;
    for (let i = 0; i < this.p.length; i++) {
      const g = gIn[i] + o.wd * this.p[i];
      this.m[i] += (1 - o.b1) * (g - this.m[i]);
      this.v[i] = o.b2 * this.v[i] + (1 - o.b2) * g * g;
      const denom = Math.sqrt(this.v[i]) / Math.sqrt(bc2) + o.eps;
      this.p[i] -= (o.lr / bc1) * (this.m[i] / denom);
    }
  }
}
