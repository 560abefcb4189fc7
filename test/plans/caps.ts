// Capability sets for plan tests (no GPU): a lavapipe-like CPU device and an H100-like GPU,
// as engine/device.ts reports them.
import type { Capabilities } from '../../engine/device.js';

export const LAVAPIPE_CAPS: Capabilities = {
  isCpu: true,
  description: 'mesa llvmpipe (LLVM 19.1.7, 256 bits)',
  vendor: 'mesa',
  shaderF16: true,
  subgroups: true,
  subgroupMatrix: false,
  timestampQuery: true,
  subgroupMinSize: 8,
  subgroupMaxSize: 8,
  maxStorageBufferBindingSize: 2 ** 31 - 4,
  maxUniformBufferBindingSize: 65536,
  maxBufferSize: 2 ** 31,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupsPerDimension: 65535,
  maxTextureDimension2D: 16384,
  readonlyStorageTextures: true,
  hostThreads: 2,
  defaultLimits: false,
  features: ['shader-f16', 'subgroups', 'timestamp-query'],
};

export const H100_CAPS: Capabilities = {
  ...LAVAPIPE_CAPS,
  isCpu: false,
  description: 'nvidia hopper NVIDIA H100 80GB HBM3',
  vendor: 'nvidia',
  subgroupMinSize: 32,
  subgroupMaxSize: 32,
  maxStorageBufferBindingSize: 2 ** 32 - 4,
  maxUniformBufferBindingSize: 65536,
  maxBufferSize: 2 ** 40,
  maxComputeWorkgroupStorageSize: 49152,
  maxTextureDimension2D: 32768,
  hostThreads: 16,
};

/** Chromium's SwiftShader (a CPU Vulkan device in the browser): subgroups of 4, no shader-f16. */
export const SWIFTSHADER_CAPS: Capabilities = {
  ...LAVAPIPE_CAPS,
  description: 'google swiftshader',
  vendor: 'google',
  shaderF16: false,
  subgroupMinSize: 4,
  subgroupMaxSize: 4,
  maxStorageBufferBindingSize: 2 ** 30,
  maxBufferSize: 2 ** 30,
  maxTextureDimension2D: 8192,
  features: ['subgroups', 'timestamp-query'],
};
