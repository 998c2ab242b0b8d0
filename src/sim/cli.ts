// `shoal sim --scenario FILE [--json] [--out DIR]` and `shoal sim report`.
import { Command, Option } from 'commander';
import { loadScenario, type Engine } from './scenario.js';
import { runVariant, type VariantResult } from './run.js';
import { Progress } from './progress.js';
import { collect, jsonLine, summaryTable, writeResults } from './results.js';
import { writeReport } from './report.js';

export const DEFAULT_OUT = 'docs/sim/results';

export function registerSimCommand(program: Command): void {
  const sim = program
    .command('sim')
    .description(
      'Simulate a fleet in virtual time: the real scheduler and the real piece selection over a flow-level network model. ' +
        'Prints a progress bar (stderr) and a summary; writes <out>/<scenario>.json and a CDF chart (.svg); with --json the last line is one JSON object.',
    )
    .option('--scenario <file>', 'scenario file (YAML subset or JSON), e.g. scenarios/fleet-10k-preheat.yaml')
    .option('--json', 'end with one JSON line (headline variant at top level, every variant under "variants")', false)
    .option('--out <dir>', 'where results and charts go', DEFAULT_OUT)
    .option('--variant <names...>', 'run only these variants of the scenario')
    .addOption(new Option('--engine <engine>', 'peer engine: the real TaskDownloader ("downloader"), the thin loop around the real PiecePicker ("thin"), or by size ("auto")').choices(['auto', 'downloader', 'thin']))
    .option('--window-ms <ms>', 'override network.windowMs (rate recomputation window, virtual ms; 0 = exact on every change)')
    .option('--quiet', 'no progress bar', false)
    .action(async (opts: { scenario?: string; json: boolean; out: string; variant?: string[]; engine?: Engine; windowMs?: string; quiet: boolean }) => {
      if (!opts.scenario) {
        console.error('shoal sim: --scenario FILE is required (or run `shoal sim report`)');
        process.exit(2);
      }
      let s;
      try {
        s = loadScenario(opts.scenario);
      } catch (err) {
        console.error(`shoal sim: ${opts.scenario}: ${(err as Error).message}`);
        process.exit(2);
      }
      if (opts.windowMs !== undefined) {
        const w = Number(opts.windowMs);
        if (!(w >= 0)) {
          console.error('shoal sim: --window-ms must be a number >= 0');
          process.exit(2);
        }
        s.network.windowMs = w;
      }
      let variants = s.variants;
      if (opts.variant?.length) {
        const unknown = opts.variant.filter((v) => !variants.some((x) => x.name === v));
        if (unknown.length) {
          console.error(`shoal sim: no variant ${unknown.join(', ')} in ${opts.scenario} (it has ${variants.map((v) => v.name).join(', ')})`);
          process.exit(2);
        }
        variants = variants.filter((v) => opts.variant!.includes(v.name));
      }
      if (opts.engine) variants = variants.map((v) => ({ ...v, engine: opts.engine! }));
      const progress = new Progress(opts.quiet);
      const t0 = performance.now();
      const results: VariantResult[] = [];
      for (const v of variants) {
        progress.line(`${s.name}/${v.name}: ${s.nodes.toLocaleString('en-US')} agents, mode ${v.mode}${v.failure ? `, ${v.failure.fraction * 100} % fail (${v.failure.mode})` : ''}${v.slowTail ? `, ${v.slowTail.fraction * 100} % slow` : ''}`);
        results.push(await runVariant(s, v, progress));
      }
      const r = collect(s, results, (performance.now() - t0) / 1000);
      const files = writeResults(opts.out, r);
      console.log(summaryTable(r));
      console.log(`results: ${files.json}  chart: ${files.svg}`);
      if (opts.json) console.log(jsonLine(r, files));
    });

  sim
    .command('report')
    .description('Write the markdown report (docs/sim/REPORT.md) from the results files of earlier runs.')
    .option('--results <dir>', 'results directory', DEFAULT_OUT)
    .option('--out <file>', 'report file', 'docs/sim/REPORT.md')
    .option('--measured <file>', 'measured calibration figures {max_s,p50_s,p99_s} (from bench/p2p)', 'docs/sim/calibration-measured.json')
    .action((opts: { results: string; out: string; measured: string }) => {
      const written = writeReport(opts.results, opts.out, opts.measured);
      console.log(`wrote ${written.file} from ${written.scenarios} result files`);
    });
}
