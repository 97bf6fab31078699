// After `vite build`: fails if dist/index.html holds anything the server's Content-Security-Policy
// would block (`script-src 'self'; style-src 'self'`, no 'unsafe-inline'): an inline <script>, a
// <style> element, a style="" attribute, an inline event handler, or a script or stylesheet from
// another origin.
import { readFile } from 'node:fs/promises';

const file = new URL('../dist/index.html', import.meta.url);
const html = await readFile(file, 'utf8');
const problems = [];

for (const match of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
  const [, attributes, body] = match;
  const src = /\bsrc\s*=\s*["']?([^"'\s>]+)/i.exec(attributes)?.[1];
  if (!src) problems.push(`inline <script>: ${body.trim().slice(0, 60)}`);
  else if (/^(https?:)?\/\//i.test(src)) problems.push(`script from another origin: ${src}`);
  if (src && body.trim()) problems.push(`<script src> with inline code: ${src}`);
}
if (/<style\b/i.test(html)) problems.push('a <style> element');
if (/\sstyle\s*=/i.test(html)) problems.push('a style="" attribute');
for (const match of html.matchAll(/\s(on[a-z]+)\s*=/gi)) problems.push(`an inline ${match[1]} handler`);
for (const match of html.matchAll(/<link\b[^>]*\bhref\s*=\s*["']?((https?:)?\/\/[^"'\s>]+)/gi)) {
  problems.push(`a link to another origin: ${match[1]}`);
}

if (problems.length) {
  console.error(`dist/index.html would break the Content-Security-Policy:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('dist/index.html: nothing inline, nothing from another origin (CSP-safe)');
