// The vulnerability gate: the chain's gate stage decides from the scan's findings and the
// namespace's policy; blocked images are remembered (store + in-memory index) and a manifest-route
// middleware refuses pulls of them to everyone but administrators (Harbor's "prevent vulnerable
// images from running").
import type { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { Middleware } from '../registry/context.js';
import type { RegistryService } from '../registry/service.js';
import { principalOf } from '../auth/principal.js';
import type { Finding } from '../scan/scanner.js';
import { severityAtLeast, type BlockedImage, type GatePolicy } from './model.js';
import { policyFor, type ChainStore } from './store.js';
import type { StageContext, StageOutcome, StageRunner } from './stage.js';
import type { ScanOutput } from './stages.js';

/** Findings that block under a policy: at or above its severity and not accepted by id or alias. */
export function blockingFindings(policy: GatePolicy, findings: readonly Finding[]): Finding[] {
  const allowed = new Set(policy.allow);
  return findings.filter((f) => severityAtLeast(f.severity, policy.severity) && !allowed.has(f.id) && !f.aliases.some((a) => allowed.has(a)));
}

export function describePolicy(policy: GatePolicy): string {
  return `gate policy "${policy.namespace || '*'}" (block at ${policy.severity} or above${policy.allow.length ? `, ${policy.allow.length} accepted advisories` : ''})`;
}

/** Blocked (repo, digest) pairs, in memory for the pull path, written through to the store. */
export class GateIndex {
  private readonly blocked = new Map<string, BlockedImage>();

  constructor(private readonly store: ChainStore) {}

  async load(): Promise<this> {
    for (const b of await this.store.listBlocked()) this.blocked.set(key(b.repo, b.digest), b);
    return this;
  }

  get size(): number {
    return this.blocked.size;
  }

  lookup(repo: string, digest: Digest): BlockedImage | undefined {
    return this.blocked.get(key(repo, digest));
  }

  async block(b: BlockedImage): Promise<void> {
    await this.store.setBlocked(b.repo, b.digest, b);
    this.blocked.set(key(b.repo, b.digest), b);
  }

  async unblock(repo: string, digest: Digest): Promise<void> {
    await this.store.setBlocked(repo, digest, null);
    this.blocked.delete(key(repo, digest));
  }
}

const key = (repo: string, digest: string) => `${repo}@${digest}`;

/** The gate stage: blocks the run (and future pulls) when the scan found what the policy forbids. */
export function gateStage(store: ChainStore, index: GateIndex): StageRunner {
  return {
    async run(ctx) {
      const scan = ctx.outputOf<ScanOutput>('scan');
      const policy = policyFor(await store.listGatePolicies(), ctx.run.repo);
      if (!policy) {
        ctx.log(`no gate policy covers ${ctx.run.repo}; passing`);
        return { status: 'succeeded', output: { policy: null, blocking: 0 } };
      }
      // A policy covers the image but nothing was scanned: passing would let an unchecked image
      // through (and the full sync would then copy it), so the chain's `gate.unscanned` decides.
      if (!scan) return unscanned(ctx, policy, index);
      const blocking = blockingFindings(policy, scan.findings);
      const digests = new Set<Digest>([ctx.run.digest, ...scan.manifests]);
      if (blocking.length === 0) {
        for (const d of digests) if (index.lookup(ctx.run.repo, d)) await index.unblock(ctx.run.repo, d);
        ctx.log(`${describePolicy(policy)}: ${scan.findings.length} finding(s), none blocking`);
        return { status: 'succeeded', output: { policy: policy.namespace, blocking: 0 } };
      }
      const list = blocking.map((f) => ({ id: f.id, severity: f.severity, package: `${f.package.name}@${f.package.version}` }));
      for (const digest of digests) {
        await index.block({ repo: ctx.run.repo, digest, policy: policy.namespace, findings: list, blockedAt: Date.now(), runId: ctx.run.id });
      }
      const reason = `${describePolicy(policy)} blocks ${blocking.length} finding(s): ${summarise(list)}`;
      return { status: 'blocked', reason, output: { policy: policy.namespace, blocking: blocking.length, findings: list } };
    },
  };
}

async function unscanned(ctx: StageContext, policy: GatePolicy, index: GateIndex): Promise<StageOutcome> {
  const why = `${describePolicy(policy)} covers ${ctx.run.repo} but there is no scan result (scan stage off or unavailable)`;
  switch (ctx.chain.gate.unscanned) {
    case 'pass':
      ctx.log(`${why}; passing (gate.unscanned = pass)`);
      return { status: 'succeeded', output: { policy: policy.namespace, blocking: 0, unscanned: true } };
    case 'fail':
      throw new RegistryError('UNAVAILABLE', `${why} (gate.unscanned = fail)`);
    case 'block': {
      const reason = 'not scanned';
      await index.block({ repo: ctx.run.repo, digest: ctx.run.digest, policy: policy.namespace, findings: [], blockedAt: Date.now(), runId: ctx.run.id, reason });
      return { status: 'blocked', reason: `${why} (gate.unscanned = block)`, output: { policy: policy.namespace, blocking: 0, unscanned: true } };
    }
  }
}

function summarise(list: BlockedImage['findings'], max = 5): string {
  const shown = list.slice(0, max).map((f) => `${f.id} (${f.severity}, ${f.package})`);
  return shown.join(', ') + (list.length > max ? ` and ${list.length - max} more` : '');
}

/**
 * Manifest GET/HEAD policy: refuses a blocked image to anyone but an administrator. Costs one
 * map size check on the hot path while nothing is blocked.
 */
export function gateMiddleware(service: RegistryService, index: GateIndex, onRefused?: () => void): Middleware {
  return async (ctx, next) => {
    if (index.size === 0 || principalOf(ctx)?.isAdmin) return next();
    const { repo, ref } = ctx.route;
    const digest = ref.includes(':') ? (ref as Digest) : (await service.getManifest(repo, ref)).digest;
    const blocked = index.lookup(repo, digest);
    if (!blocked) return next();
    onRefused?.();
    throw new RegistryError('DENIED', `pull of ${repo}@${digest} refused by gate policy "${blocked.policy || '*'}": ${blocked.reason ?? summarise(blocked.findings)}`, {
      detail: { policy: blocked.policy || '*', run: blocked.runId, findings: blocked.findings.slice(0, 50) },
    });
  };
}
