// The studio page's main thread: panels, charts and images. Every GPU step is the Worker's
// (worker.ts); this thread only sends requests and draws, so it stays responsive.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { DecodedImages, DeviceInfo, Event, ModelInfo, PriorInfo, Reconstruction, Reply, Request, StepTiming, TrainRow, TrainSettings } from './protocol.js';

const IMAGE = 64;
const VALUES = 3 * IMAGE * IMAGE;
/** The synthetic faces' test split starts here (after 50,000 train and 2,000 valid). */
const SYNTHETIC_TEST_START = 52_000;
const SYNTHETIC_VALID_START = 50_000;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

// ---------------------------------------------------------------------------------------------
// State visible to tests and people debugging in the console

interface StudioState {
  device: DeviceInfo | null;
  model: ModelInfo | null;
  prior: PriorInfo | null;
  recon: { names: string[]; mse: number[]; psnr: number[]; meanPsnr: number; ms: number } | null;
  longTasks: number[];
  trainRows: TrainRow[];
  trainState: string;
  timing: StepTiming | null;
  sampleMs: number | null;
  busy: number;
}
const state: StudioState = { device: null, model: null, prior: null, recon: null, longTasks: [], trainRows: [], trainState: 'idle', timing: null, sampleMs: null, busy: 0 };
(window as unknown as { __studio: StudioState & { loseDevice(): Promise<unknown> } }).__studio = Object.assign(state, {
  /** Destroys the GPU device as a driver reset would: to try the recovery path. */
  loseDevice: () => call({ type: 'loseDevice' }),
});

// Long main-thread tasks (over 50 ms) as the browser reports them.
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) state.longTasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: true });
} catch {
  // no Long Tasks API in this browser
}

// ---------------------------------------------------------------------------------------------
// The worker

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
let nextId = 1;
const pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();

function call<T>(req: Request, transfer: Transferable[] = []): Promise<T> {
  const id = nextId++;
  state.busy++;
  return new Promise<T>((ok, fail) => {
    pending.set(id, { ok: ok as (v: unknown) => void, fail });
    worker.postMessage({ id, req }, transfer);
  }).finally(() => state.busy--);
}

worker.onmessage = (ev: MessageEvent<Reply | Event>) => {
  const m = ev.data;
  if ('event' in m) return onEvent(m);
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  if (m.ok) p.ok(m.result);
  else {
    const e = new Error(m.error.message);
    e.name = m.error.name;
    p.fail(e);
  }
};
worker.onerror = (e) => showBanner(`The engine's worker failed: ${e.message}`);

function onEvent(e: Event): void {
  if (e.event === 'deviceLost') onDeviceLost(e.message);
  else if (e.event === 'sampleRow') onSampleRow(e);
  else if (e.event === 'trainRow') onTrainRow(e.row);
  else if (e.event === 'trainState') onTrainState(e.state, e.step, e.message, e.model);
  else if (e.event === 'stepTiming') showTiming(e.timing);
}

// ---------------------------------------------------------------------------------------------
// Errors

function hintFor(e: Error): string {
  if (e.name === 'OutOfMemory') return '';
  if (e.name === 'NoGpuError') return '';
  if (/device was lost/i.test(e.message)) return '\nThe GPU device was lost: use "Reload the model" above.';
  return '';
}

function showError(boxId: string, e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  const box = $(boxId);
  box.textContent = `${err.message}${hintFor(err)}`;
  box.hidden = false;
}

function clearError(boxId: string): void {
  const box = $(boxId);
  box.hidden = true;
  box.textContent = '';
}

function showBanner(text: string, action?: { label: string; run: () => void }): void {
  const b = $('banner');
  b.textContent = text;
  if (action) {
    const btn = document.createElement('button');
    btn.textContent = action.label;
    btn.id = 'banner-action';
    btn.onclick = action.run;
    b.append(btn);
  }
  b.hidden = false;
}

/** Runs a panel action: its error box is cleared first and shows what went wrong. */
async function guarded(boxId: string, fn: () => Promise<void>): Promise<void> {
  clearError(boxId);
  try {
    await fn();
  } catch (e) {
    showError(boxId, e);
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs (arrow keys move between them, as a tablist should)

const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')];
function selectTab(tab: HTMLButtonElement, focus = false): void {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')!).hidden = !on;
  }
  if (focus) tab.focus();
  // A panel's charts are built when it is first shown (building one is the page's longest task).
  for (const c of charts) c.show();
  history.replaceState(null, '', `#${tab.id.slice(4)}`);
}
tabs.forEach((t, i) => {
  t.onclick = () => selectTab(t);
  t.onkeydown = (e) => {
    const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (d) selectTab(tabs[(i + d + tabs.length) % tabs.length], true);
  };
});

// Theme: the system's unless picked; remembered.
const themeSel = $<HTMLSelectElement>('theme');
themeSel.value = localStorage.getItem('studio.theme') ?? 'auto';
const applyTheme = () => {
  if (themeSel.value === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = themeSel.value;
  localStorage.setItem('studio.theme', themeSel.value);
  charts.forEach((c) => c.restyle());
};
themeSel.onchange = applyTheme;
// charts take their colours when built: rebuild them when the system scheme flips
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => charts.forEach((c) => c.restyle()));

// ---------------------------------------------------------------------------------------------
// Charts (uPlot)

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

class Chart {
  private plot: uPlot | null = null;
  private data: uPlot.AlignedData = [[]];
  constructor(
    private el: HTMLElement,
    private series: { label: string; color: string; dash?: number[] }[],
    private opts: { log?: boolean; bars?: boolean; xLabel?: string; yLabel?: string } = {},
  ) {}

  private make(): void {
    this.plot?.destroy();
    const fg = cssVar('--fg');
    const grid = cssVar('--line');
    const width = Math.max(280, this.el.clientWidth || 560);
    const axis = (label?: string): uPlot.Axis => ({ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, label });
    this.plot = new uPlot(
      {
        width,
        height: 220,
        scales: { x: { time: false }, y: this.opts.log ? { distr: 3 } : {} },
        axes: [axis(this.opts.xLabel ?? 'step'), axis(this.opts.yLabel)],
        cursor: { drag: { x: true, y: false } },
        series: [
          { label: this.opts.xLabel ?? 'step' },
          ...this.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            dash: s.dash,
            spanGaps: true,
            ...(this.opts.bars ? { paths: uPlot.paths.bars!({ size: [0.9, 40] }), fill: s.color, points: { show: false } } : {}),
          })),
        ],
      },
      this.data,
      this.el,
    );
  }

  set(data: uPlot.AlignedData): void {
    this.data = data;
    if (!this.plot) this.make();
    else this.plot.setData(data);
  }
  /** Builds the (empty) chart once its panel is visible, else fits it to its width. */
  show(): void {
    if (!this.el.clientWidth) return;
    if (!this.plot) this.make();
    else this.resize();
  }
  resize(): void {
    if (this.plot && this.el.clientWidth && Math.abs(this.el.clientWidth - this.plot.width) > 4) this.plot.setSize({ width: this.el.clientWidth, height: 220 });
  }
  restyle(): void {
    if (this.plot) this.make();
  }
  get points(): number {
    return this.data[0].length;
  }
}

const BLUE = '#3b7ddd';
const ORANGE = '#e8710a';
const lossChart = new Chart($('chart-loss'), [{ label: 'train loss', color: BLUE }, { label: 'valid loss', color: ORANGE }, { label: 'recon MSE', color: '#12a4a4', dash: [4, 3] }], { log: true });
const pplChart = new Chart($('chart-ppl'), [{ label: 'train perplexity', color: BLUE }, { label: 'valid perplexity', color: ORANGE }]);
const histChart = new Chart($('chart-hist'), [{ label: 'uses', color: BLUE }], { bars: true, xLabel: 'code', yLabel: 'uses' });
const tLossChart = new Chart($('chart-tloss'), [{ label: 'loss', color: BLUE }, { label: 'recon MSE', color: '#12a4a4', dash: [4, 3] }], { log: true });
const tPplChart = new Chart($('chart-tppl'), [{ label: 'perplexity', color: BLUE }]);
const charts = [lossChart, pplChart, histChart, tLossChart, tPplChart];
addEventListener('resize', () => charts.forEach((c) => c.resize()));
applyTheme();

// ---------------------------------------------------------------------------------------------
// Images

/** Planar [-0.5, 0.5] floats (3x64x64 at `offset`) as RGBA ImageData; `abs` draws |x| x 2 (a difference). */
function toImageData(x: Float32Array, offset: number, opts: { abs?: boolean; greyFromRow?: number } = {}): ImageData {
  const img = new ImageData(IMAGE, IMAGE);
  const plane = IMAGE * IMAGE;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = x[offset + c * plane + p];
      const u = opts.abs ? Math.abs(v) * 2 : v + 0.5;
      img.data[p * 4 + c] = Math.max(0, Math.min(255, Math.round(u * 255)));
    }
    img.data[p * 4 + 3] = 255;
    if (opts.greyFromRow !== undefined && Math.floor(p / IMAGE) >= opts.greyFromRow) {
      for (let c = 0; c < 3; c++) img.data[p * 4 + c] = Math.round(img.data[p * 4 + c] * 0.25 + 96);
    }
  }
  return img;
}

function canvasOf(img: ImageData, label: string): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = img.width;
  c.height = img.height;
  c.getContext('2d')!.putImageData(img, 0, 0);
  c.setAttribute('aria-label', label);
  c.setAttribute('role', 'img');
  return c;
}

const psnrOf = (mse: number) => 10 * Math.log10(1 / mse);

/** Yields to the event loop so a long drawing job never holds the main thread for long. */
const idle = () => new Promise<void>((ok) => setTimeout(ok, 0));

// ---------------------------------------------------------------------------------------------
// Loading: checkpoints, priors, metrics, configs

const loaded: { modelBytes: ArrayBuffer | null; modelName: string; priorBytes: ArrayBuffer | null; priorName: string } = { modelBytes: null, modelName: '', priorBytes: null, priorName: '' };
let runConfig: Record<string, unknown> | null = null;

function setStatus(): void {
  const d = state.device;
  const m = state.model;
  const parts = [d ? `${d.description}${d.isCpu ? ' (CPU)' : ''}` : 'no GPU'];
  parts.push(m ? `model ${m.name} (step ${m.step}, K ${m.config.codebookSize}, ${m.parameters.toLocaleString('en-US')} parameters)` : 'no model');
  if (state.prior) parts.push(`prior ${state.prior.name} (step ${state.prior.step})`);
  $('status').textContent = parts.join(' · ');
  $('run-loaded').textContent = m ? `Model: ${m.name}, step ${m.step}, latent ${m.latent}x${m.latent}, K ${m.config.codebookSize}, D ${m.config.embeddingDim}${m.config.ema ? ', EMA codebook' : ''}.${state.prior ? ` Prior: ${state.prior.name} (width ${state.prior.width}, ${state.prior.layers} layers, step ${state.prior.step}).` : ' No prior.'}` : 'No model loaded.';
  if (!runConfig && m) showConfig(m.config as unknown as Record<string, unknown>);
  const k = $<HTMLInputElement>('edit-code');
  if (m) k.max = String(m.config.codebookSize - 1);
}

async function loadModelBytes(bytes: ArrayBuffer, name: string): Promise<void> {
  // The worker takes a copy: the page keeps the bytes to reload the model after a device loss.
  const info = await call<ModelInfo>({ type: 'loadModel', bytes: bytes.slice(0), name });
  loaded.modelBytes = bytes;
  loaded.modelName = name;
  state.model = info;
  if (state.prior && state.prior.numCodes !== info.config.codebookSize) state.prior = null;
  setStatus();
}

async function loadPriorBytes(bytes: ArrayBuffer, name: string): Promise<void> {
  const info = await call<PriorInfo>({ type: 'loadPrior', bytes: bytes.slice(0), name });
  loaded.priorBytes = bytes;
  loaded.priorName = name;
  state.prior = info;
  setStatus();
}

interface MetricRow {
  step: number;
  split: 'train' | 'valid';
  loss: number;
  recon_mse: number;
  perplexity: number;
}

function parseMetrics(text: string, name: string): MetricRow[] {
  const rows: MetricRow[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const o = JSON.parse(line) as MetricRow;
      if (typeof o.step !== 'number') throw new Error('no step');
      rows.push(o);
    } catch (e) {
      // an unfinished last line (a run being written) is expected; anything else is reported
      if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim())) throw new Error(`${name}: line ${i + 1} is not a metrics row (${(e as Error).message})`);
    }
  });
  return rows;
}

function showMetrics(rows: MetricRow[]): void {
  const steps = [...new Set(rows.map((r) => r.step))].sort((a, b) => a - b);
  const at = new Map(steps.map((s, i) => [s, i]));
  const col = (split: string, key: keyof MetricRow) => {
    const v: (number | null)[] = steps.map(() => null);
    for (const r of rows) if (r.split === split && typeof r[key] === 'number' && Number.isFinite(r[key] as number)) v[at.get(r.step)!] = r[key] as number;
    return v;
  };
  lossChart.set([steps, col('train', 'loss'), col('valid', 'loss'), col('train', 'recon_mse')] as uPlot.AlignedData);
  pplChart.set([steps, col('train', 'perplexity'), col('valid', 'perplexity')] as uPlot.AlignedData);
  $('chart-loss').dataset.points = String(rows.length);
}

function showConfig(cfg: Record<string, unknown>): void {
  const body = $('run-config').querySelector('tbody')!;
  body.replaceChildren(
    ...Object.entries(cfg)
      .filter(([, v]) => v !== null && typeof v !== 'object')
      .map(([k, v]) => {
        const tr = document.createElement('tr');
        const a = document.createElement('td');
        const b = document.createElement('td');
        a.textContent = k;
        b.textContent = String(v);
        tr.append(a, b);
        return tr;
      }),
  );
  // the run's preprocessing is what its images went through: reconstruct the same way
  if (typeof cfg.preprocess === 'string') $<HTMLSelectElement>('recon-mode').value = cfg.preprocess;
  if (typeof cfg.filter === 'string') $<HTMLSelectElement>('recon-filter').value = cfg.filter;
}

/** A file of the run panel, by what it is: metrics, config, or weights (VQ-VAE or prior). */
async function openRunFile(file: File): Promise<void> {
  const name = file.name;
  if (/\.jsonl$/i.test(name)) {
    showMetrics(parseMetrics(await file.text(), name));
  } else if (/\.json$/i.test(name)) {
    try {
      runConfig = JSON.parse(await file.text()) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${name}: not JSON (${(e as Error).message})`);
    }
    showConfig(runConfig);
  } else {
    const bytes = await file.arrayBuffer();
    try {
      await loadModelBytes(bytes, name);
    } catch (e) {
      // a prior dropped where a model was expected: take it as the prior
      if (!/PixelCNN prior checkpoint/.test((e as Error).message)) throw e;
      await loadPriorBytes(bytes, name);
    }
  }
}

$<HTMLInputElement>('file-checkpoint').onchange = (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) void guarded('run-error', async () => loadModelBytes(await f.arrayBuffer(), f.name));
};
$<HTMLInputElement>('file-prior').onchange = (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) void guarded('run-error', async () => loadPriorBytes(await f.arrayBuffer(), f.name));
};
for (const id of ['file-metrics', 'file-config']) {
  $<HTMLInputElement>(id).onchange = (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void guarded('run-error', () => openRunFile(f));
  };
}

/** The run folder the local server offers, if any: config, metrics, newest checkpoint, prior. */
async function openServedRun(): Promise<void> {
  const res = await fetch('api/run');
  if (!res.ok) return; // a static host, or no run folder given
  const { name, files } = (await res.json()) as { name: string; files: { path: string; size: number }[] };
  const paths = files.map((f) => f.path);
  const get = async (p: string) => {
    const r = await fetch(`run/${p.split('/').map(encodeURIComponent).join('/')}`);
    if (!r.ok) throw new Error(`run/${p}: ${r.status}`);
    return r;
  };
  if (paths.includes('config.json')) {
    runConfig = (await (await get('config.json')).json()) as Record<string, unknown>;
    showConfig(runConfig);
  }
  if (paths.includes('metrics.jsonl')) showMetrics(parseMetrics(await (await get('metrics.jsonl')).text(), 'metrics.jsonl'));
  // Weights: optimiser state and cached code sets are not models; the highest step wins.
  const weights = paths.filter((p) => /\.safetensors$/.test(p) && !/\.train\.safetensors$/.test(p) && !/(^|\/)codes-/.test(p));
  const stepOf = (p: string) => Number(/(\d+)(?!.*\d)/.exec(p.split('/').pop()!)?.[1] ?? -1);
  const newest = (list: string[]) => list.sort((a, b) => stepOf(b) - stepOf(a) || a.localeCompare(b))[0];
  const model = newest(weights.filter((p) => !p.startsWith('prior/')));
  const prior = newest(weights.filter((p) => p.startsWith('prior/')));
  if (model) await loadModelBytes(await (await get(model)).arrayBuffer(), `${name}/${model}`);
  if (prior) await loadPriorBytes(await (await get(prior)).arrayBuffer(), `${name}/${prior}`);
  document.title = `${name} · VQ-VAE studio`;
}

// Drag and drop on the panels that take files.
for (const sec of document.querySelectorAll<HTMLElement>('[data-drop]')) {
  sec.addEventListener('dragover', (e) => {
    e.preventDefault();
    sec.classList.add('dragging');
  });
  sec.addEventListener('dragleave', () => sec.classList.remove('dragging'));
  sec.addEventListener('drop', (e) => {
    e.preventDefault();
    sec.classList.remove('dragging');
    void droppedFiles(e.dataTransfer!).then((files) => {
      const kind = sec.dataset.drop;
      if (kind === 'run') void guarded('run-error', async () => { for (const f of files) await openRunFile(f); });
      else if (kind === 'recon') void reconstructFiles(files);
      else if (kind === 'train') void pickTrainFiles(files);
    });
  });
}

/** Files of a drop, folders walked (webkitGetAsEntry) so a dropped folder gives its images. */
async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return [...dt.files];
  const out: File[] = [];
  const walk = async (e: FileSystemEntry): Promise<void> => {
    if (e.isFile) out.push(await new Promise<File>((ok, fail) => (e as FileSystemFileEntry).file(ok, fail)));
    else if (e.isDirectory) {
      const reader = (e as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (!batch.length) break;
        for (const c of batch) await walk(c);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reconstruct

let recon: { images: Float32Array; names: string[]; r: Reconstruction } | null = null;
let selected = -1;
let edits = new Map<number, number>(); // cell -> code
let editCell = -1;

async function reconstructFiles(files: File[]): Promise<void> {
  await guarded('recon-error', async () => {
    const images = files.filter((f) => !/^\./.test(f.name));
    if (!images.length) throw new Error('No files to reconstruct.');
    $('recon-summary').textContent = `Decoding ${images.length} files…`;
    const d = await call<DecodedImages>({ type: 'decodeFiles', files: images, preprocess: { mode: $<HTMLSelectElement>('recon-mode').value, filter: $<HTMLSelectElement>('recon-filter').value } });
    showSkipped(d.skipped);
    if (!d.names.length) throw new Error(`None of the ${images.length} files decoded as an image (see the list).`);
    await runReconstruction(d.images, d.names);
  });
}

function showSkipped(skipped: { name: string; reason: string }[]): void {
  $('recon-skipped').replaceChildren(
    ...skipped.map((s) => {
      const li = document.createElement('li');
      li.textContent = `skipped ${s.name}: ${s.reason || 'the browser could not decode it'}`;
      return li;
    }),
  );
}

async function runReconstruction(images: Float32Array, names: string[]): Promise<void> {
  if (!state.model) throw new Error('No model is loaded: open a checkpoint on the Run panel, or train one on the Train panel.');
  $('recon-summary').textContent = `Reconstructing ${names.length} images…`;
  const t0 = performance.now();
  const r = await call<Reconstruction>({ type: 'reconstruct', images: images.slice() });
  recon = { images, names, r };
  const total = r.mse.reduce((a, b) => a + b, 0) / r.mse.length;
  state.recon = { names, mse: r.mse, psnr: r.mse.map(psnrOf), meanPsnr: psnrOf(total), ms: performance.now() - t0 };
  $('recon-summary').textContent = `${names.length} images: PSNR ${psnrOf(total).toFixed(2)} dB over all of them (mean MSE ${total.toExponential(3)}); reconstructed in ${Math.round(state.recon.ms)} ms.`;
  const grid = $('recon-grid');
  grid.replaceChildren();
  for (let i = 0; i < names.length; i++) {
    const fig = document.createElement('figure');
    fig.tabIndex = 0;
    fig.setAttribute('role', 'button');
    fig.setAttribute('aria-pressed', 'false');
    fig.dataset.index = String(i);
    fig.append(canvasOf(toImageData(images, i * VALUES), `${names[i]} original`), canvasOf(toImageData(r.xHat, i * VALUES), `${names[i]} reconstruction`), canvasOf(toImageData(diff(images, r.xHat, i), 0, { abs: true }), `${names[i]} |difference|`));
    const cap = document.createElement('figcaption');
    cap.innerHTML = `<span class="psnr">${psnrOf(r.mse[i]).toFixed(2)} dB</span> · `;
    cap.append(names[i]);
    cap.title = names[i];
    fig.append(cap);
    fig.onclick = () => inspect(i);
    fig.onkeydown = (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        inspect(i);
      }
    };
    grid.append(fig);
    if (i % 16 === 15) await idle();
  }
  inspect(0);
  showUsage(r.counts, `${names.length} reconstructed images`);
}

function diff(a: Float32Array, b: Float32Array, i: number): Float32Array {
  const out = new Float32Array(VALUES);
  for (let j = 0; j < VALUES; j++) out[j] = b[i * VALUES + j] - a[i * VALUES + j];
  return out;
}

function inspect(i: number): void {
  if (!recon) return;
  selected = i;
  edits = new Map();
  editCell = -1;
  $('edit-cell').textContent = '–';
  $<HTMLButtonElement>('edit-apply').disabled = true;
  for (const f of document.querySelectorAll('#recon-grid figure')) f.setAttribute('aria-pressed', String(Number((f as HTMLElement).dataset.index) === i));
  $('inspector').hidden = false;
  $('insp-name').textContent = recon.names[i];
  const L = state.model!.latent;
  const big = $<HTMLCanvasElement>('insp-canvas');
  drawScaled(big, toImageData(recon.r.xHat, i * VALUES));
  drawScaled($<HTMLCanvasElement>('edit-canvas'), toImageData(recon.r.xHat, i * VALUES));
  const map = $('codemap');
  map.style.setProperty('--n', String(L));
  const cells: HTMLButtonElement[] = [];
  for (let c = 0; c < L * L; c++) {
    const b = document.createElement('button');
    b.tabIndex = c === 0 ? 0 : -1;
    b.setAttribute('role', 'gridcell');
    b.setAttribute('aria-label', `row ${Math.floor(c / L)}, column ${c % L}: code ${codeAt(c)}`);
    b.onmouseenter = b.onfocus = () => showCell(c);
    b.onclick = () => pickCell(c);
    b.onkeydown = (e) => {
      const d = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: L, ArrowUp: -L }[e.key];
      if (d !== undefined) {
        e.preventDefault();
        const n = c + d;
        if (n >= 0 && n < L * L) {
          cells[c].tabIndex = -1;
          cells[n].tabIndex = 0;
          cells[n].focus();
        }
      }
    };
    cells.push(b);
  }
  map.replaceChildren(...cells);
}

function codeAt(cell: number): number {
  const L = state.model!.latent;
  return edits.get(cell) ?? recon!.r.codes[selected * L * L + cell];
}

function drawScaled(c: HTMLCanvasElement, img: ImageData): void {
  const tmp = canvasOf(img, '');
  const ctx = c.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, c.width, c.height);
}

function showCell(cell: number): void {
  if (!recon) return;
  const L = state.model!.latent;
  const s = IMAGE / L;
  const r = Math.floor(cell / L);
  const col = cell % L;
  $('cell-info').textContent = `Cell (${r}, ${col}): code ${codeAt(cell)}${edits.has(cell) ? ' (edited)' : ''}; pixels ${col * s}–${col * s + s - 1} x ${r * s}–${r * s + s - 1}. Left: the original's ${s}x${s} patch, right: the reconstruction's.`;
  const patch = (x: Float32Array, into: HTMLCanvasElement) => {
    const full = canvasOf(toImageData(x, selected * VALUES), '');
    const ctx = into.getContext('2d')!;
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, into.width, into.height);
    ctx.drawImage(full, col * s, r * s, s, s, 0, 0, into.width, into.height);
  };
  patch(recon.images, $<HTMLCanvasElement>('patch-orig'));
  patch(recon.r.xHat, $<HTMLCanvasElement>('patch-recon'));
}

function pickCell(cell: number): void {
  const L = state.model!.latent;
  editCell = cell;
  $('edit-cell').textContent = `(${Math.floor(cell / L)}, ${cell % L})`;
  const input = $<HTMLInputElement>('edit-code');
  input.value = String(codeAt(cell));
  $<HTMLButtonElement>('edit-apply').disabled = false;
  input.focus();
  input.select();
}

async function applyEdit(): Promise<void> {
  await guarded('recon-error', async () => {
    if (!recon || editCell < 0) return;
    const K = state.model!.config.codebookSize;
    const v = Number($<HTMLInputElement>('edit-code').value);
    if (!(Number.isInteger(v) && v >= 0 && v < K)) throw new Error(`A code is an integer from 0 to ${K - 1}, got ${$<HTMLInputElement>('edit-code').value}`);
    edits.set(editCell, v);
    await redecode();
  });
}

async function redecode(): Promise<void> {
  const L = state.model!.latent;
  const codes = recon!.r.codes.slice(selected * L * L, (selected + 1) * L * L);
  for (const [c, v] of edits) codes[c] = v;
  const img = await call<Float32Array>({ type: 'decodeCodes', codes, count: 1 });
  drawScaled($<HTMLCanvasElement>('edit-canvas'), toImageData(img, 0));
  $('edit-canvas').dataset.edits = String(edits.size);
  document.querySelectorAll<HTMLButtonElement>('#codemap button').forEach((b, c) => {
    b.classList.toggle('edited', edits.has(c));
    b.setAttribute('aria-label', `row ${Math.floor(c / L)}, column ${c % L}: code ${codeAt(c)}`);
  });
}

$<HTMLButtonElement>('edit-apply').onclick = () => void applyEdit();
$<HTMLInputElement>('edit-code').onkeydown = (e) => {
  if (e.key === 'Enter') void applyEdit();
};
$<HTMLButtonElement>('edit-reset').onclick = () => {
  if (!recon) return;
  edits = new Map();
  void guarded('recon-error', redecode);
};
$<HTMLInputElement>('recon-files').onchange = (e) => void reconstructFiles([...((e.target as HTMLInputElement).files ?? [])]);
$<HTMLInputElement>('recon-folder').onchange = (e) => void reconstructFiles([...((e.target as HTMLInputElement).files ?? [])]);
$<HTMLButtonElement>('recon-synthetic').onclick = () =>
  void guarded('recon-error', async () => {
    const n = 16;
    const images = await call<Float32Array>({ type: 'synthetic', start: SYNTHETIC_TEST_START, count: n });
    showSkipped([]);
    await runReconstruction(images, Array.from({ length: n }, (_, i) => `synthetic test face ${i}`));
  });

// ---------------------------------------------------------------------------------------------
// Codebook

let usage: number[] | null = null;

function showUsage(counts: number[], what: string): void {
  usage = counts;
  const total = counts.reduce((a, b) => a + b, 0);
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / total) * Math.log(c / total);
  const dead = counts.map((c, i) => (c === 0 ? i : -1)).filter((i) => i >= 0);
  $('cb-summary').textContent = `Over ${what} (${total} code positions): perplexity ${Math.exp(h).toFixed(2)} of ${counts.length} codes; ${counts.length - dead.length} used, ${dead.length} dead${dead.length ? ` (${dead.slice(0, 40).join(', ')}${dead.length > 40 ? ', …' : ''})` : ''}.`;
  histChart.set([counts.map((_, i) => i), counts] as uPlot.AlignedData);
  markDead();
}

function markDead(): void {
  document.querySelectorAll<HTMLElement>('#atlas figure').forEach((f, i) => {
    const dead = usage ? usage[i] === 0 : false;
    f.classList.toggle('dead', dead);
    f.querySelector('figcaption')!.textContent = `${i}${usage ? ` · ${usage[i]}` : ''}${dead ? ' dead' : ''}`;
  });
}

$<HTMLButtonElement>('cb-synthetic').onclick = () =>
  void guarded('cb-error', async () => {
    const n = Math.max(1, Math.min(2000, Number($<HTMLInputElement>('cb-count').value) || 64));
    const images = await call<Float32Array>({ type: 'synthetic', start: SYNTHETIC_VALID_START, count: n });
    const r = await call<Reconstruction>({ type: 'reconstruct', images });
    showUsage(r.counts, `${n} synthetic validation faces`);
  });

$<HTMLButtonElement>('cb-atlas').onclick = () =>
  void guarded('cb-error', async () => {
    const K = state.model?.config.codebookSize ?? 0;
    const v = await call<Float32Array>({ type: 'atlas' });
    const atlas = $('atlas');
    atlas.replaceChildren();
    for (let k = 0; k < K; k++) {
      const f = document.createElement('figure');
      f.append(canvasOf(toImageData(v, k * VALUES), `code ${k} decoded alone`));
      const cap = document.createElement('figcaption');
      f.append(cap);
      atlas.append(f);
      if (k % 64 === 63) await idle();
    }
    markDead();
  });

// ---------------------------------------------------------------------------------------------
// Sample

let sampleCount = 0;

function sampleGrid(n: number): { cols: number; rows: number } {
  const cols = Math.ceil(Math.sqrt(n));
  return { cols, rows: Math.ceil(n / cols) };
}

function drawSamples(images: Float32Array, n: number, greyFromRow?: number): void {
  const { cols, rows } = sampleGrid(n);
  const c = $<HTMLCanvasElement>('s-canvas');
  if (c.width !== cols * IMAGE || c.height !== rows * IMAGE) {
    c.width = cols * IMAGE;
    c.height = rows * IMAGE;
    c.style.width = `${cols * IMAGE * 2}px`;
  }
  const ctx = c.getContext('2d')!;
  for (let i = 0; i < n; i++) ctx.putImageData(toImageData(images, i * VALUES, { greyFromRow }), (i % cols) * IMAGE, Math.floor(i / cols) * IMAGE);
}

function onSampleRow(e: Extract<Event, { event: 'sampleRow' }>): void {
  const px = IMAGE / e.rows;
  drawSamples(e.images, sampleCount, e.rowsDone * px);
  $('s-progress').textContent = `Rows ${e.rowsDone}/${e.rows} · ${e.msPerRow.toFixed(0)} ms per row`;
}

$<HTMLButtonElement>('s-go').onclick = () =>
  void guarded('s-error', async () => {
    const n = Number($<HTMLInputElement>('s-count').value);
    const temperature = Number($<HTMLInputElement>('s-temp').value);
    const seed = Number($<HTMLInputElement>('s-seed').value);
    if (!(Number.isInteger(n) && n >= 1 && n <= 64)) throw new Error(`Images: an integer from 1 to 64, got ${$<HTMLInputElement>('s-count').value}`);
    if (!(temperature >= 0)) throw new Error('Temperature must be 0 or more (0: always the likeliest code).');
    if (!(Number.isInteger(seed) && seed >= 0)) throw new Error('Seed: a non-negative integer.');
    sampleCount = n;
    $<HTMLButtonElement>('s-go').disabled = true;
    $<HTMLButtonElement>('s-download').disabled = true;
    try {
      const r = await call<{ images: Float32Array; ms: number }>({ type: 'sample', count: n, temperature, seed });
      drawSamples(r.images, n);
      state.sampleMs = r.ms;
      $('s-progress').textContent = `${n} samples (temperature ${temperature}, seed ${seed}) in ${(r.ms / 1000).toFixed(1)} s.`;
      $<HTMLButtonElement>('s-download').disabled = false;
    } finally {
      $<HTMLButtonElement>('s-go').disabled = false;
    }
  });

function download(blob: Blob, name: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

$<HTMLButtonElement>('s-download').onclick = () => {
  $<HTMLCanvasElement>('s-canvas').toBlob((b) => b && download(b, `samples-seed${$<HTMLInputElement>('s-seed').value}-t${$<HTMLInputElement>('s-temp').value}.png`), 'image/png');
};

// ---------------------------------------------------------------------------------------------
// Train

let trainImages: Float32Array | null = null;

async function pickTrainFiles(files: File[]): Promise<void> {
  await guarded('t-error', async () => {
    $('t-images').textContent = `decoding ${files.length} files…`;
    const d = await call<DecodedImages>({ type: 'decodeFiles', files, preprocess: { mode: $<HTMLSelectElement>('recon-mode').value, filter: $<HTMLSelectElement>('recon-filter').value } });
    trainImages = d.images;
    $('t-images').textContent = `${d.names.length} images${d.skipped.length ? `, ${d.skipped.length} skipped (${d.skipped.map((s) => s.name).join(', ')})` : ''}`;
    $<HTMLSelectElement>('t-source').value = 'images';
    if (!d.names.length) throw new Error('None of the picked files decoded as an image.');
  });
}
$<HTMLInputElement>('t-folder').onchange = (e) => void pickTrainFiles([...((e.target as HTMLInputElement).files ?? [])]);

// Settings survive reloads (and nothing typed is lost on an error).
const TRAIN_FIELDS = ['t-source', 't-hidden', 't-rhidden', 't-rblocks', 't-k', 't-d', 't-beta', 't-ema', 't-batch', 't-steps', 't-lr', 't-seed', 't-log'];
try {
  const saved = JSON.parse(localStorage.getItem('studio.train') ?? '{}') as Record<string, string | boolean>;
  for (const id of TRAIN_FIELDS) {
    const el = $<HTMLInputElement>(id);
    if (saved[id] === undefined) continue;
    if (el.type === 'checkbox') el.checked = saved[id] as boolean;
    else el.value = String(saved[id]);
  }
} catch {
  // unreadable saved settings: the defaults stand
}
$('train-form').addEventListener('change', () => {
  const o: Record<string, string | boolean> = {};
  for (const id of TRAIN_FIELDS) {
    const el = $<HTMLInputElement>(id);
    o[id] = el.type === 'checkbox' ? el.checked : el.value;
  }
  localStorage.setItem('studio.train', JSON.stringify(o));
});
$('train-form').addEventListener('submit', (e) => e.preventDefault());

function trainSettings(): TrainSettings {
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  const source = $<HTMLSelectElement>('t-source').value as 'synthetic' | 'images';
  if (source === 'images' && !trainImages) throw new Error('Pick a folder of images first (or train on the synthetic faces).');
  return {
    source,
    images: source === 'images' ? trainImages!.slice() : undefined,
    hidden: num('t-hidden'),
    residualHidden: num('t-rhidden'),
    residualBlocks: num('t-rblocks'),
    codebookSize: num('t-k'),
    embeddingDim: num('t-d'),
    beta: num('t-beta'),
    ema: $<HTMLInputElement>('t-ema').checked,
    batchSize: num('t-batch'),
    steps: num('t-steps'),
    lr: num('t-lr'),
    seed: num('t-seed'),
    logEvery: num('t-log'),
  };
}

const fmtTime = (s: number) => (s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
let trainSteps = 0;

function onTrainRow(row: TrainRow): void {
  state.trainRows.push(row);
  const rows = state.trainRows;
  tLossChart.set([rows.map((r) => r.step), rows.map((r) => r.loss), rows.map((r) => r.recon_mse)] as uPlot.AlignedData);
  tPplChart.set([rows.map((r) => r.step), rows.map((r) => r.perplexity)] as uPlot.AlignedData);
  $('chart-tloss').dataset.points = String(rows.length);
  $('t-status').textContent = `Step ${row.step}/${trainSteps} · loss ${row.loss.toPrecision(4)} · recon MSE ${row.recon_mse.toPrecision(3)} (PSNR ${psnrOf(row.recon_mse).toFixed(2)} dB) · perplexity ${row.perplexity.toFixed(1)}, ${row.codebook_usage} codes used · ${row.images_per_s.toFixed(1)} img/s · ${row.step_ms.toFixed(0)} ms/step · ETA ${fmtTime(row.eta_s)}`;
}

function onTrainState(s: string, step: number, message?: string, model?: ModelInfo): void {
  state.trainState = s;
  const running = s === 'running' || s === 'paused';
  if (s === 'running' && step === 0) {
    // a new run: the previous run's curves go only once this one has started
    state.trainRows = [];
    tLossChart.set([[], [], []]);
    tPplChart.set([[], []]);
  }
  if (s === 'failed' && step === 0) $('t-status').textContent = 'Not started (see the error above).';
  $<HTMLButtonElement>('t-start').disabled = running;
  $<HTMLButtonElement>('t-pause').disabled = !running;
  $<HTMLButtonElement>('t-pause').textContent = s === 'paused' ? 'Resume' : 'Pause';
  $<HTMLButtonElement>('t-stop').disabled = !running;
  $<HTMLButtonElement>('t-download').disabled = running || !model;
  if (s === 'paused') $('t-status').textContent = `Paused at step ${step}/${trainSteps}.`;
  if (s === 'failed') showError('t-error', Object.assign(new Error(message ?? 'training failed'), { name: /Out of GPU memory/.test(message ?? '') ? 'OutOfMemory' : 'Error' }));
  if (!running && model && step > 0) {
    $('t-status').textContent = `${s === 'finished' ? 'Finished' : s === 'stopped' ? 'Stopped' : 'Failed'} at step ${step}/${trainSteps}; the trained model is now the loaded one (Reconstruct, Codebook and Download use it).`;
    state.model = model;
    if (state.prior && state.prior.numCodes !== model.config.codebookSize) state.prior = null;
    setStatus();
    // kept as a checkpoint so a device loss can reload it
    void call<{ bytes: Uint8Array }>({ type: 'exportModel' }).then((e) => {
      loaded.modelBytes = e.bytes.buffer.slice(e.bytes.byteOffset, e.bytes.byteOffset + e.bytes.byteLength) as ArrayBuffer;
      loaded.modelName = model.name;
    });
  }
  document.body.dataset.train = s;
}

$<HTMLButtonElement>('t-start').onclick = () =>
  void guarded('t-error', async () => {
    const s = trainSettings();
    trainSteps = s.steps;
    $('t-status').textContent = 'Starting…';
    await call({ type: 'train', settings: s }, s.images ? [s.images.buffer] : []);
  });
$<HTMLButtonElement>('t-pause').onclick = () => void guarded('t-error', () => call({ type: 'trainControl', action: state.trainState === 'paused' ? 'resume' : 'pause' }));
$<HTMLButtonElement>('t-stop').onclick = () => void guarded('t-error', () => call({ type: 'trainControl', action: 'stop' }));
$<HTMLButtonElement>('t-download').onclick = () =>
  void guarded('t-error', async () => {
    const e = await call<{ bytes: Uint8Array; step: number }>({ type: 'exportModel' });
    download(new Blob([e.bytes as BlobPart], { type: 'application/octet-stream' }), `studio-step${e.step}.safetensors`);
  });

// ---------------------------------------------------------------------------------------------
// Device

function fillKv(id: string, rows: [string, string][]): void {
  $(id).querySelector('tbody')!.replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      const b = document.createElement('td');
      a.textContent = k;
      b.textContent = v;
      tr.append(a, b);
      return tr;
    }),
  );
}

function showDevice(d: DeviceInfo): void {
  fillKv('d-adapter', [
    ['adapter', d.description],
    ['vendor', d.vendor || '–'],
    ['kind', d.isCpu ? 'CPU (software Vulkan)' : 'GPU'],
    ['timestamp queries', d.timestampQuery ? 'yes' : 'no (times are wall-clock only)'],
    ['limits', d.defaultLimits ? "WebGPU's defaults (the adapter's were refused)" : "the adapter's"],
    ['GPU memory in use', `${(d.liveBytes / 2 ** 20).toFixed(1)} MiB`],
  ]);
  $('d-features').replaceChildren(
    ...d.features.map((f) => {
      const li = document.createElement('li');
      li.textContent = f;
      return li;
    }),
  );
  fillKv('d-limits', Object.entries(d.limits).map(([k, v]) => [k, v.toLocaleString('en-US')]));
}

function showTiming(t: StepTiming): void {
  state.timing = t;
  const total = t.phases.reduce((a, p) => a + (p.ms ?? 0), 0);
  fillKv('d-timing', [...t.phases.map((p): [string, string] => [p.name, p.ms === null ? 'no timestamp queries' : `${p.ms.toFixed(2)} ms`]), ['GPU total', `${total.toFixed(2)} ms`], ['wall clock (with waits)', `${t.wallMs.toFixed(1)} ms`], ['batch', String(t.batchSize)]]);
  fillKv('d-kernels', (t.kernels ?? []).map((k): [string, string] => [k.kernel, `${k.ms.toFixed(2)} ms${k.count > 1 ? ` (${k.count} dispatches)` : ''}`]));
  $('d-timing-note').textContent = t.quantised
    ? 'Every time is a multiple of 0.1 ms: this browser quantises GPU timestamps (Chrome does unless started with --enable-webgpu-developer-features), so short phases read coarse.'
    : t.phases.some((p) => p.ms === null)
      ? 'This device has no timestamp queries: only the wall-clock time is known.'
      : 'GPU time from timestamp queries, per phase of the step and per kernel (each dispatch timed in a pass of its own).';
}

$<HTMLButtonElement>('d-time').onclick = () =>
  void guarded('d-error', async () => {
    const t = await call<StepTiming | null>({ type: 'timeStep', batchSize: 16 });
    if (t) showTiming(t);
    else $('d-timing-note').textContent = 'Training is running: its next step will be timed.';
    if (state.device) showDevice({ ...state.device, ...(await call<DeviceInfo>({ type: 'init' })) });
  });

// ---------------------------------------------------------------------------------------------
// Device loss and start-up

function onDeviceLost(message: string): void {
  state.device = null;
  setStatus();
  showBanner(`The GPU device was lost (${message}). Nothing you typed is lost; the model is reloaded from its checkpoint on a new device.`, {
    label: 'Reload the model',
    run: () =>
      void (async () => {
        $('banner').hidden = true;
        try {
          state.device = await call<DeviceInfo>({ type: 'init' });
          showDevice(state.device);
          if (loaded.modelBytes) await loadModelBytes(loaded.modelBytes, loaded.modelName);
          if (loaded.priorBytes) await loadPriorBytes(loaded.priorBytes, loaded.priorName);
          setStatus();
        } catch (e) {
          showBanner(`Reloading failed: ${(e as Error).message}`);
        }
      })(),
  });
}

async function start(): Promise<void> {
  selectTab(tabs.find((t) => `#${t.id.slice(4)}` === location.hash) ?? tabs[0]);
  try {
    state.device = await call<DeviceInfo>({ type: 'init' });
  } catch (e) {
    $('status').textContent = 'No WebGPU';
    showBanner((e as Error).message);
    document.body.dataset.ready = 'no-gpu';
    return;
  }
  showDevice(state.device);
  setStatus();
  try {
    await openServedRun();
  } catch (e) {
    showError('run-error', e);
  }
  document.body.dataset.ready = 'yes';
}
void start();
