// Whether data fits Runtime.vec4Texture's textures, as a pure function of the device's
// capabilities (no rt()), so plans (./conv/plan.ts) and the runtime can share one rule.
// Runtime.vec4TextureFits (./runtime.ts) still has its own copy of the rule for now; it is meant
// to call this one. (When it does, move VEC4_TEXTURE_WIDTH here and re-export it from
// ./runtime.ts, so that this module no longer imports the runtime.)
import type { Capabilities } from './device.js';
import { VEC4_TEXTURE_WIDTH } from './runtime.js';

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
