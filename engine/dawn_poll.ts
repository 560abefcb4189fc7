// Dawn's Node binding learns that GPU work finished (a mapAsync, onSubmittedWorkDone or
// popErrorScope promise) by polling: while any such promise is pending it calls
// wgpuInstanceProcessEvents and re-queues itself with the global `setImmediate`, a busy loop
// that keeps one CPU core at 100% (crbug.com/dawn/1127). On a discrete GPU that costs a core
// nobody else needs. On a CPU device (lavapipe, SwiftShader) the device's own worker threads
// need that core, so the busy loop slows every kernel (bench: any case with VQ_DAWN_POLL=spin).
//
// So on CPU devices we route Dawn's poll (and only Dawn's) through a short timer. Dawn looks up
// `setImmediate` on the global object each time it schedules a poll, and passes a native,
// anonymous, zero-argument function; everything else goes to the real setImmediate untouched.

/** Default poll interval on CPU devices (Node clamps timers to at least 1 ms). */
export const CPU_POLL_INTERVAL_MS = 1;

type Immediate = typeof setImmediate;

let original: Immediate | null = null;
let intervalMs = CPU_POLL_INTERVAL_MS;
/** Dawn polls sent through the timer since installation (for tests and diagnostics). */
let throttledPolls = 0;

const nativeSource = /^function\s*\(\)\s*\{\s*\[native code\]\s*\}$/;

/** Whether `fn` (with `args`) looks like Dawn's poll callback rather than anybody else's. */
function isDawnPoll(fn: unknown, args: unknown[]): boolean {
  return (
    typeof fn === 'function' &&
    args.length === 0 &&
    fn.length === 0 &&
    fn.name === '' &&
    nativeSource.test(Function.prototype.toString.call(fn))
  );
}

/**
 * Routes Dawn's event polling through a `ms` timer instead of a setImmediate busy loop.
 * Idempotent (a second call only changes the interval). Returns a function that undoes it.
 */
export function throttleDawnPolling(ms = CPU_POLL_INTERVAL_MS): () => void {
  if (!(ms >= 0 && Number.isFinite(ms))) throw new Error(`throttleDawnPolling: interval must be a finite number of ms >= 0, got ${ms}`);
  intervalMs = ms;
  if (!original) {
    const real = globalThis.setImmediate;
    original = real;
    const filtered = function setImmediate(fn: (...a: unknown[]) => void, ...args: unknown[]) {
      if (isDawnPoll(fn, args)) {
        throttledPolls++;
        return setTimeout(fn, intervalMs) as unknown as NodeJS.Immediate;
      }
      return real(fn, ...args);
    };
    // Keep setImmediate's other own properties (its util.promisify form among them).
    for (const key of Reflect.ownKeys(real)) {
      if (key === 'length' || key === 'name' || key === 'prototype') continue;
      Object.defineProperty(filtered, key, Object.getOwnPropertyDescriptor(real, key)!);
    }
    globalThis.setImmediate = filtered as unknown as Immediate;
  }
  return restoreDawnPolling;
}

/** Puts the real setImmediate back (Dawn busy-polls again). */
export function restoreDawnPolling(): void {
  if (!original) return;
  globalThis.setImmediate = original;
  original = null;
}

/** Whether Dawn's polling is currently throttled, and how many polls went through the timer. */
export function dawnPollingState(): { throttled: boolean; intervalMs: number; polls: number } {
  return { throttled: original !== null, intervalMs, polls: throttledPolls };
}
