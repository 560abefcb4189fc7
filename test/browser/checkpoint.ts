// A checkpoint trained in Node, loaded in the page: the model is built from the served
// .safetensors bytes with modelFromCheckpointBytes and reconstructs the served input batch
// (test/browser.test.ts compares the output with Node's), then corrupted copies of the bytes
// must be refused with the loader's error and leave GPU memory and the loaded model as they were.
import { init, memory, noGrad, tensor, tidy } from '../../engine/index.js';
import { loadCheckpointBytes, modelFromCheckpointBytes } from '../../model/checkpoint.js';
import type { VqVae } from '../../model/vqvae.js';

/** The model's reconstruction of `images` (no gradients, eval mode), and the code of each latent position. */
export async function reconstruct(model: VqVae, images: Float32Array, shape: number[]): Promise<{ xHat: Float32Array; codes: Uint32Array }> {
  const out = tidy(() =>
    noGrad(() => {
      const f = model.forward(tensor(images, shape), { train: false });
      return { xHat: f.xHat, indices: f.indices };
    }),
  );
  const xHat = (await out.xHat.read()) as Float32Array;
  const codes = (await out.indices.read()) as Uint32Array;
  out.xHat.dispose();
  out.indices.dispose();
  return { xHat, codes };
}

export interface Refusal {
  /** Which corruption, also the source name the loader was given. */
  name: string;
  /** The error's name and message, or null when the bytes were accepted. */
  error: { name: string; message: string } | null;
  liveBytesBefore: number;
  liveBytesAfter: number;
}

export interface ParityReport {
  adapter: string;
  step: number;
  output: number[];
  codes: number[];
  /** modelFromCheckpointBytes on each corrupted copy. */
  refusals: Refusal[];
  /** loadCheckpointBytes of a corrupted copy into the loaded model. */
  intoModel: Refusal;
  /** After the refused load every tensor of the loaded model is bitwise what it was. */
  modelUnchanged: boolean;
}

/** Corrupted copies of a valid model blob, each refused for a different reason. */
function corruptions(bytes: Uint8Array): { name: string; bytes: Uint8Array }[] {
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  // the data section cut short, as a broken download leaves it
  const truncated = bytes.slice(0, bytes.length - 1000);
  // the header's JSON broken at its first byte
  const badJson = bytes.slice();
  badJson[8] = 'x'.charCodeAt(0);
  // a header length far beyond the limit (the loader must not try to allocate it)
  const hugeHeader = bytes.slice();
  view(hugeHeader).setBigUint64(0, 1n << 40n, true);
  // a well-formed file whose last weight is NaN: refused after the model was allocated
  const nan = bytes.slice();
  view(nan).setFloat32(nan.length - 4, NaN, true);
  return [
    { name: 'truncated.safetensors', bytes: truncated },
    { name: 'bad-header-json.safetensors', bytes: badJson },
    { name: 'huge-header-length.safetensors', bytes: hugeHeader },
    { name: 'nan-weight.safetensors', bytes: nan },
  ];
}

/** Every tensor of the model's state_dict, read back. */
async function stateValues(model: VqVae): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of model.state.values()) out.push((await t.read()) as Float32Array);
  return out;
}

async function refusal(name: string, load: () => Promise<unknown>): Promise<Refusal> {
  const liveBytesBefore = memory().liveBytes;
  let error: Refusal['error'] = null;
  try {
    await load();
  } catch (e) {
    error = { name: (e as Error).name, message: (e as Error).message };
  }
  return { name, error, liveBytesBefore, liveBytesAfter: memory().liveBytes };
}

/** Fetches the checkpoint and the input batch (float32, `shape`), reconstructs it, and tries the corruptions. */
export async function parity(modelUrl: string, inputUrl: string, shape: number[]): Promise<ParityReport> {
  const r = await init();
  const fetchBytes = async (url: string) => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
  const bytes = await fetchBytes(modelUrl);
  const input = await fetchBytes(inputUrl);
  const images = new Float32Array(input.buffer, input.byteOffset, input.byteLength / 4);
  const { model, info } = await modelFromCheckpointBytes(bytes, modelUrl);
  const { xHat, codes } = await reconstruct(model, images, shape);

  const cases = corruptions(bytes);
  const refusals: Refusal[] = [];
  for (const c of cases) {
    refusals.push(
      await refusal(c.name, async () => {
        const m = await modelFromCheckpointBytes(c.bytes, c.name);
        m.model.dispose();
      }),
    );
  }
  const nan = cases.find((c) => c.name === 'nan-weight.safetensors')!;
  const weights = await stateValues(model);
  const intoModel = await refusal(nan.name, () => loadCheckpointBytes(nan.bytes, model, { source: nan.name }));
  const modelUnchanged = (await stateValues(model)).every((w, k) => w.every((v, i) => Object.is(v, weights[k][i])));
  model.dispose();
  return {
    adapter: r.caps.description,
    step: info.step,
    output: Array.from(xHat),
    codes: Array.from(codes),
    refusals,
    intoModel,
    modelUnchanged,
  };
}
