// The workgroup-memory GEMM tile (shaders/gemm_tile.wgsl) that the smem schedules of matmul,
// conv (forward, input and weight gradients) and the nearest-code search share: each of those
// kernels defines the tile's hooks (GemmCtx, gemm_loadA / gemm_loadB, GEMM_A_K_FAST /
// GEMM_B_K_FAST) and its own entry point around gemm_tile; this appends the tile.
import { wgslKernel } from './shaders.js';

/** A complete module: `kernel` (hooks and entry point) followed by the shared tile. */
export function withGemmTile(kernel: string): string {
  return kernel + '\n' + wgslKernel('gemm_tile', 'smem');
}
