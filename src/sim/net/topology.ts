// Where hosts sit and which links a transfer crosses. Data centres hold zones, zones hold racks,
// racks hold agents; every host has an up and a down link (its NIC), racks and zones have
// uplinks sized from what sits below them divided by the oversubscription, each DC has one link
// to the outside (other DCs and the registry), and the registry has its egress link. Seeds hang
// off zone 0 of their DC directly (they are few, fat, and placed on the spine).
import type { Scenario } from '../scenario.js';
import type { FlowNetwork } from './flows.js';

export type Role = 'agent' | 'seed' | 'registry';

export interface Place {
  /** Global indexes; -1 for the registry, which is outside every DC. */
  dc: number;
  zone: number;
  rack: number;
}

export interface TopoHost {
  readonly idx: number;
  readonly role: Role;
  readonly place: Place;
  readonly up: number;
  readonly down: number;
  readonly upBps: number;
  readonly downBps: number;
}

export interface TopologyInput {
  scenario: Scenario;
  /** NIC of each agent (slow-tail nodes differ), bytes/s up and down. */
  agentNic: (i: number) => { up: number; down: number };
  /** Nominal agent NIC used to size rack and zone uplinks. */
  nominalUpBps: number;
}

export class Topology {
  readonly hosts: TopoHost[] = [];
  readonly registry: TopoHost;
  readonly racks: number;
  readonly zones: number;
  private readonly rackUp: number[] = [];
  private readonly rackDown: number[] = [];
  private readonly zoneUp: number[] = [];
  private readonly zoneDown: number[] = [];
  private readonly dcUp: number[] = [];
  private readonly dcDown: number[] = [];
  private readonly rttMs: number;
  private readonly interDcRttMs: number;

  constructor(net: FlowNetwork, input: TopologyInput) {
    const s = input.scenario;
    const t = s.topology;
    this.zones = t.dcs * t.zonesPerDc;
    this.racks = this.zones * t.racksPerZone;
    this.rttMs = s.network.rttMs;
    this.interDcRttMs = s.network.interDcRttMs;
    // Capacities are on the wire; flows carry payload: a link carries payloadShare of its rate in
    // piece bytes (hosts keep their nominal upBps/downBps: the bound and the caps agents advertise).
    const link = (bytesPerSec: number) => net.addLink(bytesPerSec * s.network.payloadShare);
    // Agents round-robin over racks, so racks differ by at most one agent.
    const perRack = new Array<number>(this.racks).fill(0);
    for (let i = 0; i < s.nodes; i++) perRack[i % this.racks]!++;
    for (let r = 0; r < this.racks; r++) {
      const cap = t.rackOversubscription > 0 ? (perRack[r]! * input.nominalUpBps) / t.rackOversubscription : 0;
      this.rackUp.push(link(cap));
      this.rackDown.push(link(cap));
    }
    for (let z = 0; z < this.zones; z++) {
      let below = 0;
      for (let r = z * t.racksPerZone; r < (z + 1) * t.racksPerZone; r++) {
        below += t.rackOversubscription > 0 ? (perRack[r]! * input.nominalUpBps) / t.rackOversubscription : perRack[r]! * input.nominalUpBps;
      }
      const cap = t.zoneOversubscription > 0 ? below / t.zoneOversubscription : 0;
      this.zoneUp.push(link(cap));
      this.zoneDown.push(link(cap));
    }
    for (let d = 0; d < t.dcs; d++) {
      this.dcUp.push(link(t.dcUplinkBps));
      this.dcDown.push(link(t.dcUplinkBps));
    }
    for (let i = 0; i < s.nodes; i++) {
      const rack = i % this.racks;
      const zone = Math.floor(rack / t.racksPerZone);
      const nic = input.agentNic(i);
      this.hosts.push({ idx: i, role: 'agent', place: { dc: Math.floor(zone / t.zonesPerDc), zone, rack }, up: link(nic.up), down: link(nic.down), upBps: nic.up, downBps: nic.down });
    }
    let seedRack = this.racks;
    for (let d = 0; d < t.dcs; d++) {
      for (let k = 0; k < s.seeds.perDc; k++) {
        const idx = this.hosts.length;
        this.hosts.push({ idx, role: 'seed', place: { dc: d, zone: d * t.zonesPerDc, rack: seedRack++ }, up: link(s.seeds.upBps), down: link(s.seeds.downBps), upBps: s.seeds.upBps, downBps: s.seeds.downBps });
      }
    }
    this.registry = { idx: this.hosts.length, role: 'registry', place: { dc: -1, zone: -1, rack: -1 }, up: link(s.registryEgressBps), down: -1, upBps: s.registryEgressBps, downBps: 0 };
  }

  /** Links from src to dst: src NIC, the uplinks up to the first common level, down again, dst NIC. */
  path(src: TopoHost, dst: TopoHost): number[] {
    const a = src.place;
    const b = dst.place;
    const p = [src.up];
    if (a.rack !== b.rack) {
      if (a.rack >= 0 && a.rack < this.racks) p.push(this.rackUp[a.rack]!);
      if (a.zone !== b.zone) {
        if (a.zone >= 0) p.push(this.zoneUp[a.zone]!);
        if (a.dc !== b.dc) {
          if (a.dc >= 0) p.push(this.dcUp[a.dc]!);
          if (b.dc >= 0) p.push(this.dcDown[b.dc]!);
        }
        if (b.zone >= 0) p.push(this.zoneDown[b.zone]!);
      }
      if (b.rack >= 0 && b.rack < this.racks) p.push(this.rackDown[b.rack]!);
    }
    p.push(dst.down);
    return p;
  }

  /** Round-trip time between two hosts (the registry counts as remote). */
  rtt(a: TopoHost, b: TopoHost): number {
    return this.rttMs + (a.place.dc !== b.place.dc ? this.interDcRttMs : 0);
  }

  labels(h: TopoHost): { dc: string; zone: string; rack: string } {
    return { dc: `dc${h.place.dc}`, zone: `z${h.place.zone}`, rack: `r${h.place.rack}` };
  }
}
