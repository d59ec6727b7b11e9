import { defineConfig } from 'vite';

// The build is embedded into the voxprint binary (apps/server/embed-assets.cmake):
// plain files, no inline module preload polyfill (the page's CSP forbids inline
// scripts), hashed names under assets/.
export default defineConfig({
  base: '/',
  build: {
    target: 'es2020',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` proxies the API to a running `voxprint serve`.
    proxy: { '/api': 'http://127.0.0.1:7860', '/healthz': 'http://127.0.0.1:7860' },
  },
});
