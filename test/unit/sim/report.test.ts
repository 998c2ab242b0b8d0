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
    assert.ok((line.first_byte_p50_s as number) > 0, 'clients read by default: their first byte is in the line');
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

test('the calibration section puts measured and simulated p50/max side by side, per variant, with the difference', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-cal-'));
  try {
    const s = parseScenario('name: calibration-20\nnodes: 6\nimage: {layers: [8MiB]}\nnic: 100Mbit\nvariants: [{name: p2p, mode: p2p, engine: downloader}, direct]\n');
    const r = collect(s, [await runVariant(s, s.variants[0]!), await runVariant(s, s.variants[1]!)], 1);
    writeResults(join(dir, 'results'), r);
    const sim = r.results[0]!;
    // Measured 10 % slower than simulated at p50 and 50 % slower at max; direct equal.
    const measured = { max_s: sim.max_s * 1.5, p50_s: sim.p50_s * 1.1, p99_s: sim.max_s, ttfb_p50_s: 0.5, peers: 6, blob_mib: 8, cap_mbit: 100, registry_mbit: 10_000, direct_max_s: r.results[1]!.max_s, direct_p50_s: r.results[1]!.p50_s };
    writeFileSync(join(dir, 'measured.json'), JSON.stringify(measured));
    const md = readFileSync(writeReport(join(dir, 'results'), join(dir, 'REPORT.md'), join(dir, 'measured.json')).file, 'utf8');
    const p2pRow = md.split('\n').find((l) => l.startsWith('| p2p (real TaskDownloader engine) |'));
    assert.ok(p2pRow, md);
    assert.match(p2pRow!, /\| -9\.1 % \|/, 'p50: simulated is 1/1.1 of measured');
    assert.match(p2pRow!, /\| -33\.3 % ✗ \|$/, 'max: outside 15 %, flagged');
    assert.match(md, /\| direct from the registry \|.*\| \+0\.0 % \|$/m);
    assert.match(md, /Verdict on p2p p50 and max: \*\*outside 15 %\*\*/);
    // The clients read (the default), so the simulated first byte stands next to the bench's.
    assert.ok(sim.first_byte_p50_s! > 0 && sim.first_byte_p50_s! <= sim.p50_s);
    assert.match(md, /clients' first byte, p50: simulated [\d.]+ (s|ms), measured 0\.50 s/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the calibration section compares the mean of several draws of the p2p run and says whether the measurement lies in their range', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-cal-'));
  try {
    const s = parseScenario('name: calibration-20\nnodes: 6\nimage: {layers: [8MiB]}\nnic: 100Mbit\nnetwork: {payloadShare: 0.9}\nvariants: [{name: p2p, mode: p2p, engine: downloader}, {name: p2p-seed43, mode: p2p, engine: downloader, seed: 43}, direct]\n');
    const runs = [];
    for (const v of s.variants) runs.push(await runVariant(s, v));
    const r = collect(s, runs, 1);
    writeResults(join(dir, 'results'), r);
    const [a, b] = [r.results[0]!, r.results[1]!];
    assert.notEqual(a.max_s, b.max_s, 'two seeds, two draws');
    const meanP50 = (a.p50_s + b.p50_s) / 2;
    // Two measured runs whose p50s average to the mean of the draws; measured max far beyond both.
    const far = Math.max(a.max_s, b.max_s) * 2;
    const measuredRuns = [{ p50_s: meanP50 * 0.9, max_s: far }, { p50_s: meanP50 * 1.1, max_s: far }];
    const measured = { max_s: far, p50_s: meanP50 * 0.9, p99_s: 1, peers: 6, blob_mib: 8, cap_mbit: 100, registry_mbit: 10_000, runs: measuredRuns };
    writeFileSync(join(dir, 'measured.json'), JSON.stringify(measured));
    const md = readFileSync(writeReport(join(dir, 'results'), join(dir, 'REPORT.md'), join(dir, 'measured.json')).file, 'utf8');
    const p2pRow = md.split('\n').find((l) => l.startsWith('| p2p (real TaskDownloader engine) |'));
    assert.ok(p2pRow, md);
    assert.match(p2pRow!, /\(mean of 2; [\d.]+ s–[\d.]+ s\) \| [\d.]+ s \(mean of 2; [\d.]+ s–[\d.]+ s\) \| \+0\.0 % \|/, 'p50: the mean of the two draws against the mean of the two runs');
    assert.match(md, /drawn 2 times with the real engine \(seeds 1, 43\)/);
    assert.match(md, /the measured p50 lies inside and the measured max outside their range/);
    assert.match(md, /links carry 0\.9 of their rate as payload/);
    assert.match(md, /Verdict on p2p p50 and max: \*\*outside 15 %\*\*/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

