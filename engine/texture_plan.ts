// Whether data fits Runtime.vec4Texture's textures, as a pure function of the device's
// capabilities (no rt()): plans (./conv/plan.ts) and the runtime share this one rule.
import type { Capabilities } from './device.js';

/** Texels per row of the textures Runtime.vec4Texture fills (vec4 i sits at (i % W, i / W)). */
export const VEC4_TEXTURE_WIDTH = 1024;

/** The capabilities vec4TextureFits reads. */
export type Vec4TextureCaps = Pick<Capabilities, 'readonlyStorageTextures' | 'maxTextureDimension2D'>;

/**
 * Whether `vec4s` vec4s fit one texture of Runtime.vec4Texture on a device with `caps`: it needs
 * read-only storage textures, and VEC4_TEXTURE_WIDTH texels per row in at most
 * maxTextureDimension2D rows (and at least one vec4).
 */
export function vec4TextureFits(caps: Vec4TextureCaps, vec4s: number): boolean {
  return caps.readonlyStorageTextures && vec4s > 0 && Math.ceil(vec4s / VEC4_TEXTURE_WIDTH) <= caps.maxTextureDimension2D;
}
