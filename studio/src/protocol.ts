// Messages between the page and the engine's Worker. Requests carry an id and get one reply;
// events (progress, device loss) come unasked.
import type { VqVaeConfig } from '../../model/config.js';

export interface DeviceInfo {
  description: string;
  vendor: string;
  isCpu: boolean;
  timestampQuery: boolean;
  defaultLimits: boolean;
  features: string[];
  limits: Record<string, number>;
  liveBytes: number;
}

export interface ModelInfo {
  name: string;
  step: number;
  config: VqVaeConfig;
  parameters: number;
  /** Latent grid side for 64x64 images. */
  latent: number;
}

export interface PriorInfo {
  name: string;
  step: number;
  numCodes: number;
  width: number;
  layers: number;
}

export interface DecodedImages {
  /** Images that decoded: planar 3x64x64 floats in [-0.5, 0.5], one after another. */
  images: Float32Array;
  names: string[];
  /** Files that did not decode, with the browser's reason. */
  skipped: { name: string; reason: string }[];
}

export interface Reconstruction {
  xHat: Float32Array;
  /** Codes [n, latent, latent]. */
  codes: Uint32Array;
  /** Per-image MSE (data range 1, values in [-0.5, 0.5]). */
  mse: number[];
  counts: number[];
  ms: number;
}

export interface TrainSettings {
  source: 'synthetic' | 'images';
  /** With source 'images': planar floats (see DecodedImages). */
  images?: Float32Array;
  hidden: number;
  residualHidden: number;
  residualBlocks: number;
  codebookSize: number;
  embeddingDim: number;
  beta: number;
  ema: boolean;
  batchSize: number;
  steps: number;
  lr: number;
  seed: number;
  logEvery: number;
}

export interface TrainRow {
  step: number;
  loss: number;
  recon_mse: number;
  perplexity: number;
  codebook_usage: number;
  images_per_s: number;
  elapsed_s: number;
  eta_s: number;
  /** Wall ms of the last step (CPU + GPU, the worker waits for each). */
  step_ms: number;
}

export interface PhaseTiming {
  name: string;
  ms: number | null;
}

export interface KernelTiming {
  kernel: string;
  ms: number;
  count: number;
}

export interface StepTiming {
  phases: PhaseTiming[];
  /** GPU time per kernel, slowest first (each dispatch timed on its own), or null without timestamps. */
  kernels: KernelTiming[] | null;
  /** Every time is a multiple of 0.1 ms: the browser quantises timestamps. */
  quantised: boolean;
  wallMs: number;
  batchSize: number;
}

export type Request =
  | { type: 'init' }
  | { type: 'loadModel'; bytes: ArrayBuffer; name: string }
  | { type: 'loadPrior'; bytes: ArrayBuffer; name: string }
  | { type: 'decodeFiles'; files: File[]; preprocess: { mode: string; filter: string } }
  | { type: 'synthetic'; start: number; count: number }
  | { type: 'reconstruct'; images: Float32Array }
  | { type: 'decodeCodes'; codes: Uint32Array; count: number }
  | { type: 'atlas' }
  | { type: 'sample'; count: number; temperature: number; seed: number }
  | { type: 'train'; settings: TrainSettings }
  | { type: 'trainControl'; action: 'pause' | 'resume' | 'stop' }
  | { type: 'exportModel' }
  | { type: 'timeStep'; batchSize: number }
  | { type: 'loseDevice' };

export type Event =
  | { event: 'deviceLost'; message: string }
  | { event: 'sampleRow'; rowsDone: number; rows: number; msPerRow: number; images: Float32Array; codes: Uint32Array }
  | { event: 'trainRow'; row: TrainRow }
  | { event: 'trainState'; state: 'running' | 'paused' | 'stopped' | 'finished' | 'failed'; step: number; message?: string; model?: ModelInfo }
  | { event: 'stepTiming'; timing: StepTiming };

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { name: string; message: string } };
