// The Kumar–Ross lower bound on distribution time (IEEE HotWeb 2006, a fluid model):
//   T >= max(F / u_s, F / d_min, N·F / (u_s + Σ u_i))
// and the client–server bound max(N·F / u_s, F / d_min) for direct pulls. Which u_s we use:
//  - p2p-preheat: the seeds hold the image, so u_s = the seeds' total upload;
//  - p2p (cold): the image starts at the registry, so u_s = its egress, and the seeds count as
//    peers (their upload joins Σ u_i);
//  - direct: u_s = the registry's egress.
import type { Mode } from './scenario.js';

export interface BoundInput {
  mode: Mode;
  bytes: number;
  /** Download and upload capacity of each agent that must get the image, bytes/s. */
  agents: Array<{ up: number; down: number }>;
  seedsUpBps: number;
  registryBps: number;
}

export interface Bound {
  s: number;
  /** The three terms (client–server: two), seconds. */
  terms: { source_s: number; dmin_s: number; aggregate_s: number };
  uSourceBps: number;
  basis: string;
}

export function kumarRoss(b: BoundInput): Bound {
  const F = b.bytes;
  const N = b.agents.length;
  let dmin = Infinity;
  let sumUp = 0;
  for (const a of b.agents) {
    if (a.down < dmin) dmin = a.down;
    sumUp += a.up;
  }
  const dminS = N > 0 ? F / dmin : 0;
  if (b.mode === 'direct') {
    const source = (N * F) / b.registryBps;
    return { s: Math.max(source, dminS), terms: { source_s: source, dmin_s: dminS, aggregate_s: source }, uSourceBps: b.registryBps, basis: 'client-server: max(N·F/u_registry, F/d_min)' };
  }
  const preheat = b.mode === 'p2p-preheat';
  const us = preheat ? b.seedsUpBps : b.registryBps;
  const helpers = preheat ? 0 : b.seedsUpBps;
  const source = F / us;
  const aggregate = (N * F) / (us + sumUp + helpers);
  return {
    s: Math.max(source, dminS, aggregate),
    terms: { source_s: source, dmin_s: dminS, aggregate_s: aggregate },
    uSourceBps: us,
    basis: preheat ? 'u_s = total upload of the seeds (they hold the image after preheat)' : 'u_s = registry egress; seeds count as peers (their upload joins Σu_i)',
  };
}
