import { defineConfig, loadEnv } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the client on 5173 and forwards everything the server owns to VITE_BACKEND.
export default defineConfig(({ mode }) => {
  const env = { ...loadEnv(mode, process.cwd(), 'VITE_'), ...process.env };
  const target = env.VITE_BACKEND || 'http://localhost:3000';
  const proxy = {
    '/auth': { target, changeOrigin: true },
    '/api': { target, changeOrigin: true },
    '/health': { target, changeOrigin: true },
    '/ready': { target, changeOrigin: true },
    '/socket.io': { target, changeOrigin: true, ws: true },
  };
  return {
    plugins: [react()],
    server: { port: 5173, strictPort: true, proxy },
    preview: { port: 4173, proxy },
    build: { target: 'es2022' },
    test: { include: ['src/**/*.test.js'], environment: 'node' },
  };
});
