// The launcher's node flags: bin/shoal.js must run through its own shebang (`env -S node FLAGS`),
// and every script in the repo that starts a long-lived role must pass the same flag (a V8
// deadlock hung a bench agent without it; see bin/shoal.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../support/server.js';

const execFileP = promisify(execFile);
const FLAG = '--no-concurrent-recompilation';

test('bin/shoal.js runs through its shebang, which passes the flag to node', async () => {
  const bin = join(repoRoot, 'bin', 'shoal.js');
  const firstLine = (await readFile(bin, 'utf8')).split('\n', 1)[0]!;
  assert.match(firstLine, /^#!\/usr\/bin\/env -S node /);
  assert.ok(firstLine.includes(FLAG), firstLine);
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const { stdout } = await execFileP(bin, ['--version'], { timeout: 30_000 });
  assert.equal(stdout.trim(), pkg.version);
});

test('the scripts that start long-lived roles pass the flag to node', async () => {
  const start = await readFile(join(repoRoot, 'scripts', 'start.sh'), 'utf8');
  assert.match(start, new RegExp(`exec node ${FLAG} bin/shoal\\.js serve`));
  const bench = await readFile(join(repoRoot, 'bench', 'p2p', 'run.sh'), 'utf8');
  assert.match(bench, new RegExp(`spawn "\\$ns" node ${FLAG} `));
});
