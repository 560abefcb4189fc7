// Autotuning (Burn/CubeCL's autotune, cuDNN's benchmark mode): an operation whose kernel
// variant is a plan (conv passes, weight gradients, matmul, nearest-code search) lists its
// candidate plans for a shape (engine/candidates.ts), the rule-based plan first. With flag
// autotune `on`, the first use of a shape runs the rule-based plan and queues the shape; the
// next `autotunePending()` (a trainer calls it after its first step) times every candidate on
// synthetic inputs of that shape, keeps the fastest, and saves the choice in the per-adapter
// store; later uses run the choice. With `cached`, stored choices are used and nothing is timed.
// Platform-free: Node installs a file store (engine/node.ts), browsers keep an in-memory one.
import type { Capabilities } from './device.js';
import { FLAG_SPECS, type FlagName, type Flags, flags, withFlags } from './flags.js';
import { rt } from './runtime.js';
import { WGSL_SOURCES } from './wgsl.generated.js';

/** One tunable operation: its shapes, candidate plans and a way to time a candidate. */
export interface Tunable<S, P> {
  /** The operation's name, the first field of its keys (`conv.pass`, `conv.wgrad`, `matmul`, `nearest`). */
  op: string;
  /** The shape fields that decide the candidates and their speed, as stable text. */
  shape(s: S): string;
  /** The candidate plans for `s` (distinct ids), the rule-based plan first. Pure. */
  candidates(s: S, caps: Capabilities): P[];
  /** A candidate's stable name: what the store keeps (a describe* line). */
  id(p: P): string;
  /** Inputs of shape `s` (random values) on which `run(p)` records one candidate's work. */
  bench(s: S): { run(p: P): void; dispose(): void };
}

/** A stored choice. */
export interface TuneRecord {
  /** The chosen candidate's id. */
  id: string;
  /** Its median GPU time (ms) and the rule-based plan's (0: one candidate, nothing timed; -1: the rule-based plan failed). */
  ms: number;
  defaultMs: number;
  /** The rule-based plan's id and how many candidates were timed. */
  defaultId: string;
  candidates: number;
}

/** Where choices persist, one text document per adapter (see fileTuneStore in engine/node.ts). */
export interface TuneStore {
  /** Where `adapter`'s document lives, for messages (a path, or 'memory'). */
  where(adapter: string): string;
  /** The document, or null when there is none yet. */
  load(adapter: string): string | null;
  save(adapter: string, text: string): void;
}

/** Keeps documents in memory (browsers; the default). */
export function memoryTuneStore(): TuneStore {
  const docs = new Map<string, string>();
  return {
    where: (adapter) => `memory:${adapter}`,
    load: (adapter) => docs.get(adapter) ?? null,
    save: (adapter, text) => void docs.set(adapter, text),
  };
}

/** The stored document's format; bump it when its fields change. */
const FORMAT = 1;

/**
 * A candidate replaces the rule-based plan only when at least this much faster: timing noise
 * between runs of the same kernel is a few percent, and a flip-flopping choice helps no one.
 */
const TUNE_MARGIN = 0.05;

/** Timed repetitions per candidate after one warm-up run; the median counts. */
const TUNE_REPS = 3;

/** A candidate whose warm-up run takes this many times the best median so far is not repeated. */
const PRUNE_FACTOR = 3;

// ---------------------------------------------------------------------------------------------
// Keys

/** 64-bit FNV-1a of `text` as 16 hex digits (stable across platforms; not cryptographic). */
export function hashText(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/** The capability fields plans read: a change of any of them can change the candidates or their speed. */
const CAPS_FIELDS = [
  'isCpu', 'subgroups', 'subgroupMinSize', 'subgroupMaxSize', 'hostThreads', 'maxUniformBufferBindingSize',
  'maxComputeWorkgroupStorageSize', 'readonlyStorageTextures', 'maxTextureDimension2D', 'timestampQuery',
] as const satisfies readonly (keyof Capabilities)[];

/** The flags plans read (every conv, matmul and nearest-code switch). */
const PLAN_FLAGS = (Object.keys(FLAG_SPECS) as FlagName[]).filter((n) => /^(conv|matmul|vq)[A-Z]/.test(n));

/** The adapter's identity: a hash of its name, vendor and features. */
export function adapterId(caps: Pick<Capabilities, 'description' | 'vendor' | 'features'>): string {
  return hashText(`${caps.vendor}|${caps.description}|${caps.features.join(',')}`);
}

/**
 * The key of one tuning: operation, shape, dtype, the plan-relevant capability fields and flags
 * (hashed), and the adapter. Readable up to the hashes, e.g.
 * `matmul M8192 N512 K64 ... f32 caps=... flags=... adapter=...`.
 */
export function tuneKey(op: string, shape: string, dtype: string, caps: Capabilities, planFlags: Readonly<Record<string, unknown>>): string {
  // The suffix is the same for every call with these caps and flags objects: hashed once.
  if (caps !== suffixFor.caps || planFlags !== suffixFor.flags) {
    const c = hashText(CAPS_FIELDS.map((f) => `${f}=${caps[f]}`).join('|')).slice(0, 8);
    const fl = hashText(PLAN_FLAGS.map((f) => `${f}=${planFlags[f]}`).join('|')).slice(0, 8);
    suffixFor = { caps, flags: planFlags, text: `caps=${c} flags=${fl} adapter=${adapterId(caps).slice(0, 8)}` };
  }
  return `${op} ${shape} ${dtype} ${suffixFor.text}`;
}

let suffixFor: { caps: unknown; flags: unknown; text: string } = { caps: null, flags: null, text: '' };

/**
 * The engine's kernel sources (shaders/*.wgsl) as one hash: a file tuned for other sources is
 * discarded. The unrolled parts emitted from TypeScript are not in it; a stale choice there
 * costs speed, never results, since every candidate computes the same op.
 */
let engineHash: string | null = null;
export function engineVersion(): string {
  engineHash ??= hashText(`format ${FORMAT}\n${Object.keys(WGSL_SOURCES).sort().map((k) => `${k}\n${WGSL_SOURCES[k]}`).join('\n')}`);
  return engineHash;
}

// ---------------------------------------------------------------------------------------------
// State: the store, the choices loaded per store location, the plans resolved, the queue.

interface Job {
  key: string;
  tunable: Tunable<any, any>;
  shape: unknown;
}

interface Loaded {
  adapter: string;
  records: Map<string, TuneRecord>;
}

let store: TuneStore = memoryTuneStore();
/** Choices by store location (so a changed VQ_AUTOTUNE_CACHE loads its own file). */
const loaded = new Map<string, Loaded>();
/** Plans resolved this session, by key. */
const resolved = new Map<string, unknown>();
const pending = new Map<string, Job>();
const counters = { timings: 0, tuned: 0, hits: 0 };

/** Installs the store choices persist in (Node: fileTuneStore; default: in memory). */
export function setTuneStore(s: TuneStore): void {
  store = s;
  loaded.clear();
  resolved.clear();
}

/** Forgets the choices loaded and resolved, the queue and the counters (tests; a new process reloads the same way). */
export function resetAutotune(): void {
  loaded.clear();
  resolved.clear();
  pending.clear();
  counters.timings = 0;
  counters.tuned = 0;
  counters.hits = 0;
}

/** Timing runs made, shapes tuned and stored choices used since resetAutotune. */
export function autotuneCounters(): Readonly<typeof counters> {
  return { ...counters };
}

/** Keys of the shapes waiting to be tuned. */
export function pendingTunings(): string[] {
  return [...pending.keys()];
}

function warn(message: string): void {
  console.warn(`[vq] autotune: ${message}`);
}

/** The choices in a stored document, or what is wrong with it (corrupt, foreign or stale). */
function parseDocument(text: string, adapter: string): Map<string, TuneRecord> | string {
  let doc: any;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `is not valid JSON (${(e as Error).message})`;
  }
  if (typeof doc !== 'object' || doc === null || doc.format !== FORMAT || typeof doc.entries !== 'object' || doc.entries === null) {
    return `is not a tuning cache of format ${FORMAT}`;
  }
  if (doc.adapter !== adapter) return `belongs to adapter ${String(doc.adapter)}, not ${adapter}`;
  if (doc.engine !== engineVersion()) return 'was tuned for other kernel sources';
  const records = new Map<string, TuneRecord>();
  for (const [key, r] of Object.entries(doc.entries as Record<string, any>)) {
    if (typeof r?.id !== 'string' || typeof r.ms !== 'number') return `has a malformed entry '${key}'`;
    records.set(key, r as TuneRecord);
  }
  return records;
}

/** The stored document of `adapter` and what is wrong with it, if anything (a read error included). */
function readDocument(adapter: string): Map<string, TuneRecord> | string | null {
  let text: string | null;
  try {
    text = store.load(adapter);
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
  return text === null ? null : parseDocument(text, adapter);
}

function choices(adapter: string): Loaded {
  const where = store.where(adapter);
  let l = loaded.get(where);
  if (!l) {
    const doc = readDocument(adapter);
    if (typeof doc === 'string') warn(`${where} ${doc}; ignored, shapes are tuned again`);
    l = { adapter, records: doc instanceof Map ? doc : new Map() };
    loaded.set(where, l);
  }
  return l;
}

function save(l: Loaded, description: string): void {
  // Entries another process saved meanwhile are kept (ours win on the same key).
  const theirs = readDocument(l.adapter);
  const entries = Object.fromEntries([...(theirs instanceof Map ? theirs : []), ...l.records]);
  const doc = { format: FORMAT, engine: engineVersion(), adapter: l.adapter, description, entries };
  try {
    store.save(l.adapter, JSON.stringify(doc, null, 1));
  } catch (e) {
    warn(`cannot write ${store.where(l.adapter)} (${(e as Error).message}); the choices last for this process only`);
  }
}

// ---------------------------------------------------------------------------------------------
// Call sites

/** Flag autotune resolved for a device: `auto` tunes on GPUs and keeps the rules on CPU devices. */
export function autotuneMode(f: Pick<Flags, 'autotune'>, caps: Pick<Capabilities, 'isCpu'>): 'off' | 'on' | 'cached' {
  if (f.autotune !== 'auto') return f.autotune;
  return caps.isCpu ? 'off' : 'on';
}

/**
 * The plan to run for shape `s` of `t`: `fallback()` (the rule-based plan) with flag autotune
 * off; else the stored choice when there is one; else `fallback()`, and with `on` the shape is
 * queued for autotunePending.
 */
export function tunedPlan<S, P>(t: Tunable<S, P>, s: S, fallback: () => P): P {
  const f = flags();
  const caps = rt().caps;
  const mode = autotuneMode(f, caps);
  if (mode === 'off') return fallback();
  const key = tuneKey(t.op, t.shape(s), 'f32', caps, f);
  const done = resolved.get(key);
  if (done !== undefined) return done as P;
  const record = choices(adapterId(caps)).records.get(key);
  if (record) {
    const p = t.candidates(s, caps).find((c) => t.id(c) === record.id);
    if (p !== undefined) {
      counters.hits++;
      resolved.set(key, p);
      return p;
    }
  }
  if (mode === 'on' && !pending.has(key)) pending.set(key, { key, tunable: t, shape: s });
  return fallback();
}

/** One shape's timings: every candidate's median (ms; Infinity when it failed) and the choice. */
export interface TuneResult {
  key: string;
  defaultId: string;
  defaultMs: number;
  chosenId: string;
  chosenMs: number;
  times: { id: string; ms: number; pruned: boolean; error?: string }[];
  /** Wall-clock ms the shape's tuning took (compiles included). */
  wallMs: number;
}

/** GPU time of the work `fn` records (timestamps; wall clock where the device has none). */
async function timeOnce(fn: () => void): Promise<number> {
  counters.timings++;
  const r = rt();
  const t0 = performance.now();
  const ms = await r.timeGpu(fn);
  if (ms !== null) return ms;
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Times each of `candidates` on `run` and returns the index of the fastest: the first (the
 * rule-based plan) unless another is TUNE_MARGIN faster. Each candidate runs once to warm up
 * (compiles; one that throws is skipped with a warning, one PRUNE_FACTOR times slower than the
 * fastest warm-up is not repeated unless it is the rule-based plan), then the rest run `reps`
 * rounds in turn, so load from other processes falls on all of them alike; a candidate's time is
 * its median. A candidate that beats the rule-based plan runs `reps` more rounds against it
 * alone, and wins only if it still does.
 */
export async function tune<P>(
  candidates: readonly P[],
  run: (p: P) => void,
  id: (p: P) => string,
  reps = TUNE_REPS,
): Promise<{ best: number; times: TuneResult['times'] }> {
  const times: TuneResult['times'] = candidates.map((p) => ({ id: id(p), ms: Infinity, pruned: false }));
  const attempt = async (i: number): Promise<number | null> => {
    try {
      const ms = await timeOnce(() => run(candidates[i]));
      await rt().sync(); // a candidate's GPU errors surface here, not in the next one
      return ms;
    } catch (e) {
      const error = (e as Error).message.split('\n')[0];
      warn(`candidate ${times[i].id} failed (${error}); skipped`);
      times[i] = { ...times[i], ms: Infinity, error };
      return null;
    }
  };
  const warm: number[] = [];
  for (let i = 0; i < candidates.length; i++) warm.push((await attempt(i)) ?? Infinity);
  const fastest = Math.min(...warm);
  // The rule-based plan is the baseline: it is never pruned.
  const live = warm.flatMap((ms, i) => ((i === 0 && Number.isFinite(ms)) || ms <= PRUNE_FACTOR * fastest ? [i] : []));
  warm.forEach((ms, i) => {
    if (Number.isFinite(ms) && !live.includes(i)) times[i] = { ...times[i], ms, pruned: true };
  });
  const samples: number[][] = candidates.map(() => []);
  for (let k = 0; k < reps; k++) {
    for (const i of live) {
      if (times[i].error) continue;
      const ms = await attempt(i);
      if (ms !== null) samples[i].push(ms);
    }
  }
  const settle = () => {
    samples.forEach((xs, i) => {
      if (xs.length && !times[i].error) times[i] = { ...times[i], ms: median(xs), pruned: false };
    });
    let best = 0;
    for (let i = 1; i < times.length; i++) if (times[i].ms < times[best].ms) best = i;
    return best !== 0 && times[best].ms < (1 - TUNE_MARGIN) * times[0].ms ? best : 0;
  };
  const best = settle();
  if (best === 0 || times[0].error) return { best, times };
  // A win over the rule-based plan is confirmed head to head, in turns, before it counts.
  for (let k = 0; k < reps; k++) {
    for (const i of [0, best]) {
      const ms = await attempt(i);
      if (ms !== null) samples[i].push(ms);
    }
  }
  return { best: settle(), times };
}

/**
 * Tunes every queued shape (see tunedPlan) and saves the choices; returns what was timed.
 * Call it where awaiting is fine and no other work is being recorded (after a training step).
 */
export async function autotunePending(opts: { reps?: number; log?: (line: string) => void } = {}): Promise<TuneResult[]> {
  const jobs = [...pending.values()];
  pending.clear();
  if (!jobs.length) return [];
  const r = rt();
  await r.sync();
  const caps = r.caps;
  const l = choices(adapterId(caps));
  const results: TuneResult[] = [];
  for (const job of jobs) {
    const t0 = performance.now();
    const t = job.tunable;
    const candidates = t.candidates(job.shape, caps);
    let best = 0;
    let times: TuneResult['times'] = [];
    if (candidates.length > 1) {
      const bench = t.bench(job.shape);
      try {
        ({ best, times } = await tune(candidates, (p) => bench.run(p), (p) => t.id(p), opts.reps));
      } finally {
        bench.dispose();
      }
    } else {
      times = [{ id: t.id(candidates[0]), ms: 0, pruned: false }];
    }
    const record: TuneRecord = { id: times[best].id, ms: times[best].ms, defaultMs: times[0].ms, defaultId: times[0].id, candidates: candidates.length };
    resolved.set(job.key, candidates[best]);
    // Every candidate failed: the rule-based plan runs this process, and the shape is tried again in the next.
    if (Number.isFinite(record.ms)) l.records.set(job.key, { ...record, defaultMs: Number.isFinite(record.defaultMs) ? record.defaultMs : -1 });
    counters.tuned++;
    const result: TuneResult = {
      key: job.key, defaultId: record.defaultId, defaultMs: record.defaultMs, chosenId: record.id, chosenMs: record.ms, times, wallMs: performance.now() - t0,
    };
    results.push(result);
    opts.log?.(`${job.key.split(' f32 ')[0]}: ${record.id} ${record.ms.toFixed(3)} ms (rule: ${record.defaultId} ${record.defaultMs.toFixed(3)} ms)`);
  }
  save(l, caps.description);
  return results;
}

/**
 * Runs `work` once with flag autotune `on` (the rule-based plans run, every tunable shape it
 * meets is queued), then tunes the queue (autotunePending). A separate pass before training,
 * e.g. `await autotune(() => model.step(batch))`; the choices are used while flag autotune is
 * `on` or `cached`.
 */
export async function autotune(work: () => unknown, opts: Parameters<typeof autotunePending>[0] = {}): Promise<TuneResult[]> {
  await withFlags({ autotune: 'on' }, async () => {
    await work();
    await rt().sync();
  });
  return autotunePending(opts);
}
