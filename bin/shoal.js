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
// An agent's young generation, unless the user sized it (node --max-semi-space-size=N or
// NODE_OPTIONS). A node agent allocates fast (piece chunks) but keeps little, and V8 let its young
// generation grow to 32 MiB of resident memory, a third of the agent's budget on every node. V8
// reads the growth factor at each growth, so factor 1 set here keeps it at its initial 1 MiB
// semi-spaces. A larger maximum cannot be set here: V8 reads --max-semi-space-size only at
// start-up (a loop keeping survivors peaked at 32 MiB of new space with =64 set at run time, at
// 128 MiB with =64 on node's command line), so the registry and the simulator run with V8's
// default (16 MiB semi-spaces) unless node is started with the flag; for the simulator it did not
// pay (docs/sim/ramp-experiments.md).
const YOUNG_GENERATION_FLAGS = { agent: '--semi-space-growth-factor=1' };
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
