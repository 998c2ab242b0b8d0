#!/usr/bin/env -S node --no-concurrent-recompilation
// --no-concurrent-recompilation: Node 20's V8 can deadlock. Seen in gdb: the main thread, inside
// Object.setPrototypeOf (every new AbortController does one), started a GC and waited at a safepoint
// for a background TurboFan job, and that job waited on a map read lock (most likely the one the main
// thread held for the prototype transition): the process sleeps forever on a futex, port open.
// One of 50 bench agents hung that way mid-transfer (gdb stacks in bench/p2p/README.md). The flag
// must be on node's command line (V8 creates the compiler thread at start-up), so every launcher
// in this repo passes it; compiling on the main thread costs the same CPU, in a few ms pauses.
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import { setFlagsFromString } from 'node:v8';
// The young generation per role, unless the user sized it (node --max-semi-space-size=N or
// NODE_OPTIONS). The registry's manifest-pull storms want a large one (fewer scavenges, shorter
// tail latency). A node agent allocates fast (piece chunks) but keeps little, and V8 let its young
// generation grow to 32 MiB of resident memory, a third of the agent's budget on every node. V8
// ignores a smaller maximum set at run time, but it reads the growth factor at each growth, so
// factor 1 keeps the agent's young generation at its initial 1 MiB semi-spaces.
const YOUNG_GENERATION_FLAGS = {
  serve: '--max-semi-space-size=32',
  'all-in-one': '--max-semi-space-size=32',
  agent: '--semi-space-growth-factor=1',
  // The fleet simulator keeps a large population of objects that live a few hundred virtual ms
  // (requests, flows, timers): with 16 MiB semi-spaces each scavenge copied them again and took 35
  // ms at 10,000 nodes, a tenth of the run. 64 MiB: 13 % less CPU on the first 5 virtual seconds
  // of fleet-10k-preheat (155 against 178 CPU-s, side by side).
  sim: '--max-semi-space-size=64',
};
const userSized = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('semi-space'));
const youngGenerationFlag = YOUNG_GENERATION_FLAGS[process.argv[2]];
if (youngGenerationFlag && !userSized) setFlagsFromString(youngGenerationFlag);
// A node agent loads only its own command (src/cli/agent-main.ts): the full CLI costs it ~20 MB.
const entry = process.argv[2] === 'agent' ? '../dist/cli/agent-main.js' : '../dist/cli/main.js';
import(entry).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('shoal: dist/ is missing; run `npm ci` (or `npm run build`) first.');
    process.exit(1);
  }
  throw err;
});
