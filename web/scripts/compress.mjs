// After `vite build`: writes a Brotli (`.br`, quality 11) and a gzip (`.gz`, level 9) copy next to
// every text file of dist/ that compression makes smaller, so the server sends them as they are
// (`Content-Encoding: br` / `gzip`) instead of compressing on each request. The server embeds
// these copies in its release binary and picks one by the request's Accept-Encoding.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const COMPRESSIBLE = /\.(html|js|mjs|css|svg|json|txt|xml|webmanifest|map)$/i;
// Below this a compressed body saves less than its headers cost.
const MIN_BYTES = 512;

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else yield full;
  }
}

let raw = 0;
let br = 0;
let gz = 0;
let count = 0;
const all = [];
for await (const file of files(dist)) all.push(file);
for (const file of all) {
  // Left over from an earlier build into the same folder: its original may be gone.
  if (/\.(br|gz)$/.test(file)) await rm(file);
}
for (const file of all) {
  if (/\.(br|gz)$/.test(file) || !COMPRESSIBLE.test(file)) continue;
  const data = await readFile(file);
  if (data.length < MIN_BYTES) continue;
  const brotli = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  const gzip = gzipSync(data, { level: 9 });
  raw += data.length;
  if (brotli.length < data.length) {
    await writeFile(`${file}.br`, brotli);
    br += brotli.length;
  }
  if (gzip.length < data.length) {
    await writeFile(`${file}.gz`, gzip);
    gz += gzip.length;
  }
  count++;
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`compressed ${count} files of dist/: ${kib(raw)} → brotli ${kib(br)}, gzip ${kib(gz)}`);
