// The model as a library (`vqvae-webgpu/model`), platform-free: the VQ-VAE, its config and
// parameters, checkpoints and safetensors as bytes, and the PixelCNN prior. File I/O lives in
// the Node-only checkpoint_files.ts and safetensors_file.ts.
export * from './config.js';
export * from './params.js';
export * from './vqvae.js';
export * from './checkpoint.js';
export * from './safetensors.js';
export * from './pixelcnn.js';
