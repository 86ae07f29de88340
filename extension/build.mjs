// `make extension`: bundles the worker, the options page and the offscreen document with the
// official socket.io-client into dist/, beside the static files (manifest.json at the root).
// No minifying: page.js functions are serialised into pages and must stay as written.

import { build } from 'esbuild';
import { cpSync, rmSync } from 'node:fs';

const dist = new URL('./dist/', import.meta.url).pathname;
rmSync(dist, { recursive: true, force: true });
cpSync(new URL('./static/', import.meta.url).pathname, dist, { recursive: true });
await build({
  entryPoints: ['src/background.js', 'src/options.js', 'src/offscreen.js'],
  outdir: dist,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'chrome116',
  legalComments: 'none',
  logLevel: 'warning',
});
