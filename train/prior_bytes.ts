// A PixelCNN prior checkpoint from its bytes, platform-free (the studio page loads priors the
// user picks; the Node loader reads the file and does the same checks).
import { rt } from '../engine/runtime.js';
import { PixelCnn, type PixelCnnConfig, resolvePixelCnnConfig } from '../model/pixelcnn.js';
import { decodeSafetensors, toFloat32 } from '../model/safetensors.js';

/** True when the bytes' safetensors metadata says they hold a PixelCNN prior (no GPU work). */
export function isPriorCheckpoint(bytes: Uint8Array, source = 'prior checkpoint'): boolean {
  return decodeSafetensors(bytes, source).metadata['pixelcnn.config'] !== undefined;
}

/**
 * Builds the prior a checkpoint's config describes and loads its weights once every name,
 * shape and value has been checked (on an error the model is disposed); errors name `source`.
 */
export function priorFromBytes(bytes: Uint8Array, source = 'prior checkpoint'): { model: PixelCnn; step: number; config: PixelCnnConfig } {
  const f = decodeSafetensors(bytes, source);
  const raw = f.metadata['pixelcnn.config'];
  if (!raw) throw new Error(`${source}: not a PixelCNN prior checkpoint (no 'pixelcnn.config' metadata)`);
  let config: PixelCnnConfig;
  try {
    config = resolvePixelCnnConfig(JSON.parse(raw) as PixelCnnConfig);
  } catch (e) {
    throw new Error(`${source}: bad 'pixelcnn.config' metadata: ${(e as Error).message}`);
  }
  const probe = new Map<string, Float32Array>();
  const model = new PixelCnn(config);
  try {
    for (const [name, t] of model.params) {
      const st = f.tensors.get(name);
      if (!st || st.shape.join() !== t.shape.join()) {
        throw new Error(`${source}: '${name}' is ${st ? `[${st.shape.join(', ')}]` : 'missing'}, the model needs [${t.shape.join(', ')}]`);
      }
      const v = toFloat32(st);
      if (v.some((x) => !Number.isFinite(x))) throw new Error(`${source}: '${name}' holds non-finite values`);
      probe.set(name, v);
    }
    for (const [name, t] of model.params) rt().overwrite(t.buffer, probe.get(name)!);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, step: Number(f.metadata['pixelcnn.step'] ?? 0), config };
}
