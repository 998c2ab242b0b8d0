// `shoal chain ...` and `shoal replicate`: admin CLI over the registry's /api/v1/chains API, and a
// one-shot resumable image copy between registries.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { request } from 'undici';
import { parseSize } from '../server/config.js';
import { RegistryClient, parseImageReference } from '../client/registry-client.js';
import { FileUploadJournal } from '../replicate/journal.js';
import { Replicator } from '../replicate/replicator.js';
import { STAGE_NAMES, isFinished, type ChainInput, type LogLine, type Run } from './model.js';
import { CHAIN_API_PREFIX } from './routes.js';
import { renderRunTable, formatBytes } from './render.js';

const DEFAULT_REGISTRY = process.env.SHOAL_REGISTRY ?? 'http://127.0.0.1:5000';
const EXIT = { succeeded: 0, failed: 1, blocked: 3 } as const;

async function api<T>(registry: string, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  // With token auth on, the chain API is for administrators: Basic credentials or a bearer token.
  if (process.env.SHOAL_TOKEN) headers.authorization = `Bearer ${process.env.SHOAL_TOKEN}`;
  else if (process.env.SHOAL_USER) headers.authorization = `Basic ${Buffer.from(`${process.env.SHOAL_USER}:${process.env.SHOAL_PASSWORD ?? ''}`).toString('base64')}`;
  const res = await request(`${registry.replace(/\/+$/, '')}${CHAIN_API_PREFIX}${path}`, {
    method: method as 'GET',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) {
    let msg = text;
    try {
      msg = (JSON.parse(text) as { errors: Array<{ message: string }> }).errors.map((e) => e.message).join('; ');
    } catch {
      /* not an error body */
    }
    throw new Error(`${method} ${path}: ${res.statusCode} ${msg}`);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function die(err: unknown): never {
  console.error(`shoal: ${(err as Error).message}`);
  process.exit(2);
}

export function registerChainCommands(program: Command): void {
  const chain = program
    .command('chain')
    .description('Delivery chains: scan → gate → replicate → preheat → notify on every matching push (talks to a running `shoal serve`).')
    .option('--registry <url>', 'registry admin API base URL (env SHOAL_REGISTRY); with auth on, credentials from SHOAL_USER/SHOAL_PASSWORD or SHOAL_TOKEN', DEFAULT_REGISTRY);
  const reg = () => chain.opts().registry as string;

  chain
    .command('add <name>')
    .description('Create or replace a chain. Either --file with a JSON definition (see docs/chain.md), or the flags below.')
    .option('--file <path>', 'JSON chain definition; flags given as well override its fields')
    .option('--repo <glob>', 'repository pattern the chain is attached to ("team/*", "team/**"); repeatable', collect)
    .option('--tag <glob>', 'tag pattern a push must match (default "*"); repeatable', collect)
    .option('--manual-only', 'do not trigger on push; only `shoal chain run`')
    .option('--replicate-to <url>', 'replication target registry, e.g. http://registry-eu:5000; repeatable', collect)
    .option('--rewrite-prefix <prefix>', 'prepend this to repository names on the targets (e.g. "mirror/")')
    .option('--strip-prefix <prefix>', 'remove this prefix from repository names on the targets')
    .option('--target-creds <user:password>', 'credentials for the replication targets')
    .option('--preheat <scheduler-url>', "P2P scheduler of a cluster to preheat (its seeds); repeatable", collect)
    .option('--preheat-registry <url>', 'registry the seeds fetch from (default: the scheduler\'s --registry)')
    .option('--webhook <url>', 'webhook for chain events (CloudEvents 1.0 JSON); repeatable', collect)
    .option('--webhook-secret <secret>', 'HMAC-SHA256 key for X-Shoal-Signature')
    .option('--off <stages>', `comma-separated stages to switch off (${STAGE_NAMES.join(', ')})`)
    .option('--gate-unscanned <mode>', 'when a gate policy covers the image but it was not scanned: block (default), fail or pass')
    .option('--sync-interval <ms>', 'full sync of the replication targets this often (milliseconds; 0 = off)', (v) => Number(v))
    .option('--retries <n>', 'retries per stage', (v) => Number(v))
    .option('--timeout <ms>', 'timeout per stage attempt in milliseconds', (v) => Number(v))
    .action(async (name: string, o) => {
      try {
        const def = (o.file ? JSON.parse(await readFile(resolve(o.file), 'utf8')) : {}) as Record<string, any>;
        def.name = name;
        if (o.repo) def.repositories = o.repo;
        if (o.tag) def.tags = o.tag;
        if (o.manualOnly) def.onPush = false;
        const [username, password] = o.targetCreds ? String(o.targetCreds).split(/:(.*)/s) : [];
        if (o.replicateTo) {
          def.replicate = {
            ...def.replicate,
            targets: (o.replicateTo as string[]).map((url, i) => ({ name: `target-${i + 1}`, url, username, password, rewrite: { prefix: o.rewritePrefix ?? '', stripPrefix: o.stripPrefix ?? '' } })),
          };
        }
        if (o.gateUnscanned !== undefined) def.gate = { ...def.gate, unscanned: o.gateUnscanned };
        if (o.syncInterval !== undefined) def.replicate = { ...def.replicate, syncIntervalMs: o.syncInterval };
        if (o.preheat) def.preheat = { ...def.preheat, clusters: (o.preheat as string[]).map((scheduler, i) => ({ name: `cluster-${i + 1}`, scheduler, registry: o.preheatRegistry })) };
        if (o.webhook) def.notify = { ...def.notify, webhooks: (o.webhook as string[]).map((url) => ({ url, secret: o.webhookSecret })) };
        const off = new Set(String(o.off ?? '').split(',').filter(Boolean));
        for (const s of off) if (!STAGE_NAMES.includes(s as never)) throw new Error(`unknown stage "${s}" in --off`);
        for (const s of STAGE_NAMES) {
          const cur = (def[s] ?? {}) as Record<string, unknown>;
          if (off.has(s)) cur.enabled = false;
          if (o.retries !== undefined) cur.retries = o.retries;
          if (o.timeout !== undefined) cur.timeoutMs = o.timeout;
          if (Object.keys(cur).length) def[s] = cur;
        }
        if (!def.repositories) throw new Error('give --repo <glob> (or "repositories" in --file)');
        const saved = await api<ChainInput>(reg(), 'PUT', `/${encodeURIComponent(name)}`, def);
        console.log(`chain ${saved.name} saved: ${(saved.repositories ?? []).join(', ')} tags ${(saved.tags ?? ['*']).join(', ')}`);
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('list')
    .description('List chains.')
    .option('--json', 'print JSON')
    .action(async (o) => {
      try {
        const { chains } = await api<{ chains: Array<Record<string, any>> }>(reg(), 'GET', '');
        if (o.json) return console.log(JSON.stringify(chains, null, 2));
        if (chains.length === 0) return console.log('no chains (add one with `shoal chain add NAME --repo GLOB`)');
        for (const c of chains) {
          const on = STAGE_NAMES.filter((s) => c[s]?.enabled !== false).join(' → ');
          console.log(`${c.name.padEnd(20)} ${c.repositories.join(',')} tags ${c.tags.join(',')}${c.onPush ? '' : ' (manual)'}  [${on}]  targets ${c.replicate.targets.length}, clusters ${c.preheat.clusters.length}, webhooks ${c.notify.webhooks.length}`);
        }
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('rm <name>')
    .description('Remove a chain (its runs stay listed).')
    .action(async (name: string) => {
      try {
        await api(reg(), 'DELETE', `/${encodeURIComponent(name)}`);
        console.log(`chain ${name} removed`);
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('run <name> <image>')
    .description('Run a chain by hand on an image of this registry ("team/app:1" or "team/app@sha256:..."); prints the run id.')
    .option('--watch', 'follow the run until it ends (exit 0 succeeded, 1 failed, 3 blocked)')
    .action(async (name: string, image: string, o) => {
      try {
        const run = await api<Run>(reg(), 'POST', `/${encodeURIComponent(name)}/runs`, { image });
        console.log(run.id);
        if (o.watch) process.exit(await watch(reg(), run.id));
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('sync <name>')
    .description("Reconcile the chain's replication targets with this registry now: every matching tag that differs and that the chain's scan and gate cleared is replicated; for the others a run is started (blocked images never are). Scheduled with replicate.syncIntervalMs.")
    .option('--json', 'print the report as JSON')
    .action(async (name: string, o) => {
      try {
        const r = await api<{ checked: number; upToDate: number; replicated: number; referrersCopied: number; skippedBlocked: number; queued: Array<{ image: string; run: string }>; failed: Array<{ image: string; target: string; error: string }>; ms: number }>(reg(), 'POST', `/${encodeURIComponent(name)}/sync`);
        if (o.json) return console.log(JSON.stringify(r));
        console.log(`sync ${name}: ${r.checked} checked, ${r.upToDate} up to date, ${r.replicated} replicated, ${r.referrersCopied} referrer(s) added, ${r.skippedBlocked} blocked, ${r.queued.length} queued for the chain's scan and gate, ${r.failed.length} failed (${r.ms} ms)`);
        for (const f of r.failed) console.log(`  ${f.image} → ${f.target}: ${f.error}`);
        if (r.failed.length) process.exit(1);
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('runs')
    .description('List runs, newest first.')
    .option('--chain <name>', 'only this chain')
    .option('--repo <repo>', 'only this repository')
    .option('--status <status>', 'queued, running, succeeded, failed or blocked')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'print JSON')
    .action(async (o) => {
      try {
        const q = new URLSearchParams({ limit: o.limit });
        for (const k of ['chain', 'repo', 'status']) if (o[k]) q.set(k, o[k]);
        const { runs } = await api<{ runs: Run[] }>(reg(), 'GET', `/_runs?${q}`);
        if (o.json) return console.log(JSON.stringify(runs, null, 2));
        if (runs.length === 0) return console.log('no runs');
        for (const r of runs) {
          const ms = r.finishedAt && r.startedAt ? `${((r.finishedAt - r.startedAt) / 1000).toFixed(1)} s` : '';
          const stages = r.stages.map((s) => `${s.name}:${s.status}`).join(' ');
          console.log(`${r.id}  ${r.status.padEnd(9)} ${r.chain} ${r.repo}${r.tag ? `:${r.tag}` : ''} ${new Date(r.createdAt).toISOString()} ${ms}\n    ${stages}${r.reason ? `\n    ${r.reason}` : ''}`);
        }
      } catch (err) {
        die(err);
      }
    });

  chain
    .command('watch <run>')
    .description('Follow a run live (stage table, progress bars, log) until it ends. Exit 0 succeeded, 1 failed, 3 blocked.')
    .action(async (id: string) => {
      try {
        process.exit(await watch(reg(), id));
      } catch (err) {
        die(err);
      }
    });

  const gate = chain.command('gate').description('Vulnerability gate policies per namespace, and images they blocked.');
  gate
    .command('set <namespace>')
    .description('Block images in NAMESPACE (e.g. "team"; "" or "_" for every repository) with a finding at or above --severity.')
    .requiredOption('--severity <level>', 'UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL')
    .option('--allow <id>', 'accepted advisory id or alias, never blocks; repeatable', collect)
    .action(async (ns: string, o) => {
      try {
        const p = await api<{ namespace: string }>(reg(), 'PUT', `/_gate/policies/${ns === '' ? '_' : ns}`, { severity: String(o.severity).toUpperCase(), allow: o.allow ?? [] });
        console.log(`gate policy for "${p.namespace || '*'}" saved`);
      } catch (err) {
        die(err);
      }
    });
  gate
    .command('list')
    .description('List gate policies and blocked images.')
    .action(async () => {
      try {
        const { policies } = await api<{ policies: Array<{ namespace: string; severity: string; allow: string[] }> }>(reg(), 'GET', '/_gate/policies');
        const { blocked } = await api<{ blocked: Array<{ repo: string; digest: string; policy: string; findings: unknown[] }> }>(reg(), 'GET', '/_gate/blocked');
        for (const p of policies) console.log(`policy ${p.namespace || '*'}: block at ${p.severity}+${p.allow.length ? `, allow ${p.allow.join(',')}` : ''}`);
        for (const b of blocked) console.log(`blocked ${b.repo}@${b.digest} by "${b.policy || '*'}" (${b.findings.length} finding(s))`);
      } catch (err) {
        die(err);
      }
    });
  gate
    .command('rm <namespace>')
    .description('Remove the policy of a namespace.')
    .action(async (ns: string) => {
      try {
        await api(reg(), 'DELETE', `/_gate/policies/${ns === '' ? '_' : ns}`);
        console.log('removed');
      } catch (err) {
        die(err);
      }
    });

  program
    .command('replicate <source> <target>')
    .description(
      'Copy one image (manifests, blobs, referrers) from one registry to another, resumably: ' +
        'e.g. `shoal replicate http://127.0.0.1:5000/team/app:1 http://eu:5000/mirror/app:1`. ' +
        'A copy killed halfway resumes from the target\'s upload offset when rerun with the same --state.',
    )
    .option('--state <dir>', 'where upload offsets are journaled for resume', '.shoal-replicate')
    .option('--chunk-size <size>', 'PATCH chunk size', '16MiB')
    .option('--concurrency <n>', 'blobs copied at once', '3')
    .option('--no-referrers', 'do not carry the image\'s referrers (signatures, SBOMs)')
    .option('--src-creds <user:password>', 'source credentials')
    .option('--dest-creds <user:password>', 'target credentials')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, target: string, o) => {
      try {
        const src = splitUrl(source);
        const dst = splitUrl(target);
        const creds = (c?: string) => (c ? { username: c.split(/:(.*)/s)[0]!, password: c.split(/:(.*)/s)[1] ?? '' } : {});
        const replicator = new Replicator(new RegistryClient(src.base, creds(o.srcCreds)), new RegistryClient(dst.base, creds(o.destCreds)), {
          journal: new FileUploadJournal(resolve(o.state)),
          chunkSize: parseSize(o.chunkSize),
          concurrency: Number(o.concurrency),
        });
        // SIGTERM/SIGINT: let the chunk in flight finish and be journaled (the replicator checks the
        // signal between chunks), so a rerun resumes from it; Distribution cancels an upload that a
        // client cut off mid-PATCH. A second signal exits at once.
        const stop = new AbortController();
        const onSignal = (sig: NodeJS.Signals) => {
          if (stop.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
          console.error(`shoal: ${sig}: finishing the chunk in flight, then stopping; rerun the same command to resume`);
          stop.abort(new Error(`interrupted by ${sig}`));
        };
        process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
        let lastPrint = 0;
        const result = await replicator.replicate({
          signal: stop.signal,
          sourceRepo: src.repo,
          reference: src.reference,
          targetRepo: dst.repo,
          tags: dst.reference.includes(':') ? [] : [dst.reference],
          referrers: o.referrers,
          onLog: (m) => !o.json && console.error(m),
          onProgress: (d, t) => {
            if (o.json || Date.now() - lastPrint < 1000) return;
            lastPrint = Date.now();
            console.error(`  ${formatBytes(d)} / ${formatBytes(t)}`);
          },
        });
        console.log(o.json ? JSON.stringify(result) : `replicated ${result.digest}: ${formatBytes(result.bytesSent)} sent`);
      } catch (err) {
        if (err instanceof Error && /^interrupted by SIG/.test(err.message)) {
          console.error(`shoal: ${err.message}; upload offsets saved in ${resolve(o.state)}`);
          process.exit(err.message.endsWith('SIGINT') ? 130 : 143);
        }
        die(err);
      }
    });
}

function splitUrl(ref: string): { base: string; repo: string; reference: string } {
  const m = /^(https?:\/\/[^/]+)\/(.+)$/.exec(ref);
  if (m) {
    const r = parseImageReference(m[2]!);
    return { base: m[1]!, repo: r.repo, reference: r.reference };
  }
  const r = parseImageReference(ref);
  if (!r.host) throw new Error(`"${ref}" names no registry: use http://HOST:PORT/repo:tag or HOST:PORT/repo:tag`);
  return { base: `http://${r.host}`, repo: r.repo, reference: r.reference };
}

/** Polls the run until it ends; draws a live table on a terminal, prints log lines otherwise. */
export async function watch(registry: string, id: string, opts: { pollMs?: number; out?: NodeJS.WriteStream } = {}): Promise<number> {
  const out = opts.out ?? process.stdout;
  const tty = out.isTTY === true;
  let after = 0;
  let drawn = 0;
  const logs: LogLine[] = [];
  for (;;) {
    const { run, logs: fresh } = await api<{ run: Run; logs: LogLine[] }>(registry, 'GET', `/_runs/${id}?logsAfter=${after}`);
    for (const l of fresh) {
      after = Math.max(after, l.seq);
      logs.push(l);
      if (!tty) out.write(`${new Date(l.at).toISOString()} ${l.stage.padEnd(9)} ${l.message}\n`);
    }
    if (tty) {
      const text = renderRunTable(run, logs.slice(-8), out.columns || 120);
      if (drawn) out.write(`\x1b[${drawn}A\x1b[J`);
      out.write(text);
      drawn = text.split('\n').length - 1;
    }
    if (isFinished(run.status)) {
      if (!tty) out.write(`run ${run.id} ${run.status}${run.reason ? `: ${run.reason}` : ''}\n`);
      return EXIT[run.status as keyof typeof EXIT];
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
}
