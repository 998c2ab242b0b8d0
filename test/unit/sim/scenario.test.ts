// Scenario files: the YAML subset, units, defaults and the errors people will hit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parseYaml } from '../../../src/sim/yaml.js';
import { loadScenario, parseBytes, parseRate, parseScenario } from '../../../src/sim/scenario.js';

test('yaml subset: maps, lists, flow collections, comments, scalars', () => {
  const y = parseYaml(`# top
a: 1
b: "x # not a comment"
c: [1, two, "3"]
d:
  e: true
  f: {g: 0.5, h: null}
list:
  - plain
  - name: n1
    mode: p2p
  -
    k: v
same-level:
- 1
- 2
`);
  assert.deepEqual(y, { a: 1, b: 'x # not a comment', c: [1, 'two', '3'], d: { e: true, f: { g: 0.5, h: null } }, list: ['plain', { name: 'n1', mode: 'p2p' }, { k: 'v' }], 'same-level': [1, 2] });
  assert.throws(() => parseYaml('a: 1\n  b: 2\n'), /indentation/);
  assert.throws(() => parseYaml('a: &x 1\n'), /not supported/);
  assert.deepEqual(parseYaml('{"a": [1, 2]}'), { a: [1, 2] });
});

test('units: sizes and rates', () => {
  assert.equal(parseBytes('1GiB', 'x'), 1024 ** 3);
  assert.equal(parseBytes('3GB', 'x'), 3e9);
  assert.equal(parseRate('1Gbit', 'x'), 125e6);
  assert.equal(parseRate('40Mbit', 'x'), 5e6);
  assert.equal(parseRate('300MB/s', 'x'), 300e6);
  assert.throws(() => parseRate('fast', 'nic'), /nic: "fast" is not a rate/);
});

test('scenario: defaults, variants, and loud errors', () => {
  const s = parseScenario('nodes: 10\nimage:\n  size: 1GiB\n  layerCount: 4\nvariants: [direct, p2p, fail-10pct, {name: big, mode: p2p-preheat, nic: 10Gbit}]\n');
  assert.equal(s.layers.length, 4);
  assert.equal(s.layers.reduce((a, b) => a + b, 0), 1024 ** 3);
  assert.deepEqual(s.variants.map((v) => v.mode), ['direct', 'p2p', 'p2p-preheat', 'p2p-preheat']);
  assert.equal(s.variants[2]!.failure?.fraction, 0.1);
  assert.equal(s.variants[3]!.nicBps, 1.25e9);
  assert.equal(s.layerConcurrency, 3);
  assert.throws(() => parseScenario('nodes: 10\nimage: {size: 1GiB}\nnic: 1Gbit\ntopologgy: {}\n'), /unknown key "topologgy"/);
  assert.throws(() => parseScenario('nodes: 10\nimage: {size: 1GiB}\nvariants: [p3p]\n'), /unknown variant "p3p"/);
});

test('every shipped scenario parses', () => {
  const files = readdirSync('scenarios').filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.includes('fleet-10k-preheat.yaml'));
  for (const f of files) {
    const s = loadScenario(`scenarios/${f}`);
    assert.ok(s.nodes > 0 && s.variants.length > 0, f);
  }
});

test('the example in scenarios/README.md parses', () => {
  const md = readFileSync('scenarios/README.md', 'utf8');
  const yaml = md.slice(md.indexOf('```yaml') + 7, md.indexOf('```', md.indexOf('```yaml') + 7));
  const s = parseScenario(yaml);
  assert.equal(s.variants.length, 2);
  assert.equal(s.variants[1]!.failure?.mode, 'hang');
});
