// The engine's public API.
export * from './device.js';
export { dawnPollingState } from './dawn_poll.js';
export * from './runtime.js';
export * from './pool.js';
export * from './random.js';
export * from './tensor.js';
export * from './autograd.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './shape.js';
export * from './loss.js';
export * from './optim.js';
export * from './matmul.js';
export * from './conv.js';
export * from './vq.js';
export * from './vq_ema.js';
export * from './cross_entropy.js';
export * from './gate.js';
