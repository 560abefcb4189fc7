// Reverse-mode autograd. Ops call `record` to attach a GradNode to their output; `backward`
// walks the graph in reverse topological order (found iteratively, so deep graphs work),
// accumulates gradients where a tensor feeds several ops, writes leaves' `.grad`, and frees
// each node's saved activations as soon as its backward has run. Backward passes run under
// noGrad: they build no graph of their own (no higher-order gradients).
import { type GradNode, Tensor, keep, ones, releaseNode, share } from './tensor.js';

let gradDisabled = 0;

/** Runs `fn` without recording autograd history. */
export function noGrad<T>(fn: () => T): T {
  gradDisabled++;
  try {
    return fn();
  } finally {
    gradDisabled--;
  }
}

export function isGradEnabled(): boolean {
  return gradDisabled === 0;
}

/** True when an op on `inputs` must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradDisabled === 0 && inputs.some((t) => t?.requiresGrad);
}

/**
 * Attaches a backward rule to `out` when any input requires a gradient. `save` lists tensors
 * the rule needs; it receives them as its second argument (never capture them in the
 * closure: they may be disposed by then). Returns `out`.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: Tensor[],
  save: Tensor[],
  backward: GradNode['backward'],
): Tensor {
  if (!needsGrad(...inputs)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, saved: save.map((t) => keep(share(t))), backward };
  return out;
}

/** Order: every node after all nodes that consume its output (reverse topological). */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (!visited.has(next) && next.requiresGrad) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

export interface BackwardOptions {
  /** Gradient of the root (default: ones, which needs a one-element root). */
  grad?: Tensor;
  /** Keep the graph and its saved activations for another backward. */
  retainGraph?: boolean;
}

/**
 * Accumulates d(root)/d(leaf) into `leaf.grad` for every leaf with requiresGrad that `root`
 * depends on.
 */
export function backward(root: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error(`backward(): ${root.describe()} does not require grad (no parameter with requiresGrad reaches it)`);
  }
  let seed = opts.grad;
  if (!seed) {
    if (root.size !== 1) throw new Error(`backward(): ${root.describe()} is not a scalar; pass opts.grad`);
    seed = ones(root.shape);
  } else if (seed.shape.join() !== root.shape.join()) {
    throw new Error(`backward(): gradient ${seed.describe()} does not match ${root.describe()}`);
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    // Every map entry owns its storage reference, so entries can be disposed independently.
    grads.set(root, opts.grad ? share(seed!) : seed!);
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.node;
      if (!node) {
        // a leaf
        if (t.requiresGrad) {
          if (t.grad) {
            const sum = addGrads(t.grad, g);
            t.grad.dispose();
            g.dispose();
            t.grad = keep(sum);
          } else {
            t.grad = keep(g);
          }
        } else g.dispose();
        continue;
      }
      const inGrads = node.backward(g, node.saved);
      if (inGrads.length !== node.inputs.length) {
        throw new Error(`backward of ${node.op} returned ${inGrads.length} gradients for ${node.inputs.length} inputs`);
      }
      node.inputs.forEach((input, i) => {
        let gi = inGrads[i];
        if (!gi || !input.requiresGrad) return;
        if (gi.shape.join() !== input.shape.join()) {
          throw new Error(`backward of ${node.op}: gradient ${gi.describe()} does not match input ${input.describe()}`);
        }
        gi = keep(share(gi));
        const prev = grads.get(input);
        if (prev) {
          const sum = keep(addGrads(prev, gi));
          prev.dispose();
          gi.dispose();
          grads.set(input, sum);
        } else grads.set(input, gi);
      });
      for (const gi of inGrads) if (gi && gi !== g) gi.dispose();
      g.dispose();
      if (!opts.retainGraph) releaseNode(t);
    }
    for (const g of grads.values()) g.dispose();
  });
}

// The elementwise module registers its add here, which keeps this file free of kernel imports.
let addImpl: ((a: Tensor, b: Tensor) => Tensor) | null = null;
export function registerGradAdd(add: (a: Tensor, b: Tensor) => Tensor): void {
  addImpl = add;
}
function addGrads(a: Tensor, b: Tensor): Tensor {
  if (!addImpl) throw new Error('autograd: elementwise ops are not loaded');
  return addImpl(a, b);
}

/** Disposes and clears the gradients of `params`. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
