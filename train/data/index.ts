// The data pipeline: datasets (synthetic faces, CelebA, image folders), the prepare step and
// its packed cache, the batch loader, image preprocessing and PNG grids.
export * from './images.js';
export * from './png.js';
export * from './synthetic.js';
export * from './sources.js';
export * from './store.js';
export * from './prepare.js';
export * from './dataset.js';
export * from './loader.js';
