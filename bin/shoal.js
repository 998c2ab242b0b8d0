#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import { setFlagsFromString } from 'node:v8';
// A larger young generation means fewer scavenges under a manifest-pull storm (shorter tail latency).
setFlagsFromString('--max-semi-space-size=32');
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('shoal: dist/ is missing; run `npm ci` (or `npm run build`) first.');
    process.exit(1);
  }
  throw err;
});
