// Vite build of the studio page: a static site with relative paths (works from any static
// host or subfolder), the engine in a module Worker.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 1000 },
  worker: { format: 'es' },
});
