// The conv module's public path; the code lives in engine/conv/ (see its index.ts).
export * from './conv/index.js';
