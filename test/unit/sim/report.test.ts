// Results files, the chart and the generated report, from a tiny run (and from nothing at all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseScenario } from '../../../src/sim/scenario.js';
import { runVariant } from '../../../src/sim/run.js';
import { collect, jsonLine, summaryTable, writeResults } from '../../../src/sim/results.js';
import { writeReport } from '../../../src/sim/report.js';

test('results, chart, JSON line and report from a tiny run; the report also works with no results', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-sim-'));
  try {
    const s = parseScenario('name: fleet-10k-preheat\nnodes: 12\nimage: {layers: [16MiB]}\nvariants: [p2p-preheat, direct]\n');
    const r = collect(s, [await runVariant(s, s.variants[0]!), await runVariant(s, s.variants[1]!)], 1);
    const files = writeResults(join(dir, 'results'), r);
    const line = JSON.parse(jsonLine(r, files)) as Record<string, unknown>;
    for (const k of ['nodes', 'variant', 'max_s', 'bound_s', 'ratio_to_bound', 'origin_ratio', 'scheduler_peak_msgs_per_s', 'scheduler_cpu_share', 'wall_s', 'p50_s', 'p99_s']) assert.ok(k in line, k);
    assert.equal(line.variant, 'p2p-preheat');
    assert.equal((line.variants as unknown[]).length, 2);
    assert.match(summaryTable(r), /p2p-preheat .*direct/s);
    assert.match(readFileSync(files.svg, 'utf8'), /^<svg [^>]*>[\s\S]*<path d="M [\d.]+ [\d.]+ L/);
    writeFileSync(join(dir, 'measured.json'), JSON.stringify({ max_s: 1, p50_s: 1, p99_s: 1 }));
    const rep = writeReport(join(dir, 'results'), join(dir, 'REPORT.md'), join(dir, 'measured.json'));
    const md = readFileSync(rep.file, 'utf8');
    assert.match(md, /## Headline/);
    assert.match(md, /\| every node done within 1\.3× the Kumar–Ross bound \|/);
    assert.match(md, /## What is real code and what is modelled/);
    const empty = writeReport(join(dir, 'nothing'), join(dir, 'EMPTY.md'), join(dir, 'none.json'));
    assert.equal(empty.scenarios, 0);
    assert.match(readFileSync(empty.file, 'utf8'), /No results yet/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
