// The scheduler's hot-path codec: announce and heartbeat bodies in, announce replies out.
// At 10,000 peers these two messages are nearly all the scheduler's traffic, and zod's generic
// walk plus JSON.stringify of the same parents over and over cost more CPU than the scheduling
// itself (measured by `shoal sim`: ~44 µs of codec per message against ~30 µs of core work).
// The parsers below accept exactly what ./schemas.ts accepts (test/unit/p2p/codec.test.ts
// checks that on generated bodies, the zod schemas being the reference) and strip unknown
// fields the same way; the reply reuses each PeerInfo's and each manifest's JSON.
import type { z } from 'zod';
import { isDigest, type Digest } from '../../oci/digest.js';
import { announceSchema, describeIssues, heartbeatSchema } from './schemas.js';
import type { AnnounceRequest, AnnounceResponse, BadPeerReport, HeartbeatRequest, Locality, PeerInfo, PieceManifest, TaskState } from '../protocol.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** A request-body parser: the fast ones here, or a zod schema wrapped by the server. */
export interface BodyParser<T> {
  parse(value: unknown): Parsed<T>;
}

class Invalid extends Error {}
const fail = (path: string, message: string): never => {
  throw new Invalid(`${path}: ${message}`);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown, path: string, min: number, max: number): string {
  if (typeof v !== 'string') return fail(path, `expected string, received ${kind(v)}`);
  if (v.length < min) return fail(path, `must be at least ${min} character${min === 1 ? '' : 's'}`);
  if (v.length > max) return fail(path, `must be at most ${max} characters`);
  return v;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fail(path, `expected number, received ${kind(v)}`);
  if (!Number.isInteger(v)) return fail(path, 'expected an integer');
  if (v < min) return fail(path, `must be >= ${min}`);
  if (v > max) return fail(path, `must be <= ${max}`);
  return v;
}

function digest(v: unknown, path: string): Digest {
  const s = str(v, path, 0, 200);
  return isDigest(s) ? (s as Digest) : fail(path, 'must be a digest such as sha256:<64 lowercase hex>');
}

function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  return typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : fail(path, `must be one of ${allowed.join(', ')}`);
}

function array(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) return fail(path, `expected array, received ${kind(v)}`);
  if (v.length > max) return fail(path, `must have at most ${max} items`);
  return v;
}

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

const LABEL = /^[\x21-\x7e]+$/;
function label(v: unknown, path: string): string {
  const s = str(v, path, 1, 128);
  return LABEL.test(s) ? s : fail(path, 'must be 1-128 printable ASCII characters without spaces');
}

// `new URL` is the costliest check of a body; a fleet sends the same few thousand URLs again and
// again, so the verdicts are remembered (bounded: the map is simply cleared when full).
const urlVerdicts = new Map<string, boolean>();
function httpUrl(v: unknown, path: string): string {
  const s = str(v, path, 0, 2048);
  let ok = urlVerdicts.get(s);
  if (ok === undefined) {
    try {
      const u = new URL(s);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
    } catch {
      ok = false;
    }
    if (urlVerdicts.size >= 50_000) urlVerdicts.clear();
    urlVerdicts.set(s, ok);
  }
  return ok ? s : fail(path, 'must be an http(s) URL without credentials, e.g. http://10.0.0.5:4001');
}

function peerInfo(v: unknown, path: string): PeerInfo {
  if (!isObject(v)) return fail(path, `expected object, received ${kind(v)}`);
  const id = str(v.id, `${path}.id`, 1, 256);
  const url = httpUrl(v.url, `${path}.url`);
  const role = oneOf(v.role, `${path}.role`, ['seed', 'agent'] as const);
  const labels: Locality = {};
  if (v.labels !== undefined) {
    if (!isObject(v.labels)) return fail(`${path}.labels`, `expected object, received ${kind(v.labels)}`);
    const { dc, zone, rack } = v.labels;
    if (dc !== undefined) labels.dc = label(dc, `${path}.labels.dc`);
    if (zone !== undefined) labels.zone = label(zone, `${path}.labels.zone`);
    if (rack !== undefined) labels.rack = label(rack, `${path}.labels.rack`);
  }
  const info: PeerInfo = { id, url, role, labels };
  if (v.uploadBps !== undefined) {
    const b = v.uploadBps;
    if (typeof b !== 'number' || !Number.isFinite(b)) return fail(`${path}.uploadBps`, `expected number, received ${kind(b)}`);
    if (!(b > 0) || b > 1e13) return fail(`${path}.uploadBps`, 'must be > 0 and <= 1e13');
    info.uploadBps = b;
  }
  return info;
}

const STATES = ['started', 'downloading', 'done', 'failed', 'left'] as const satisfies readonly TaskState[];
const REASONS = ['corrupt-piece', 'unreachable', 'slow', 'refused'] as const satisfies readonly BadPeerReport['reason'][];

function announce(v: unknown): AnnounceRequest {
  if (!isObject(v)) return fail('(body)', `expected object, received ${kind(v)}`);
  const peer = peerInfo(v.peer, 'peer');
  if (!isObject(v.task)) return fail('task', `expected object, received ${kind(v.task)}`);
  const task: AnnounceRequest['task'] = { digest: digest(v.task.digest, 'task.digest') };
  if (v.task.size !== undefined) task.size = int(v.task.size, 'task.size', 0, Number.MAX_SAFE_INTEGER);
  if (v.task.repo !== undefined) task.repo = str(v.task.repo, 'task.repo', 1, 255);
  const out: AnnounceRequest = {
    peer,
    task,
    state: oneOf(v.state, 'state', STATES),
    completedPieces: int(v.completedPieces, 'completedPieces', 0, 1e9),
    wantParents: int(v.wantParents, 'wantParents', 0, 64),
  };
  if (v.badPeers !== undefined) {
    out.badPeers = array(v.badPeers, 'badPeers', 64).map((b, i) => {
      const p = `badPeers.${i}`;
      if (!isObject(b)) return fail(p, `expected object, received ${kind(b)}`);
      const r: BadPeerReport = { peerId: str(b.peerId, `${p}.peerId`, 1, 256), reason: oneOf(b.reason, `${p}.reason`, REASONS) };
      if (b.detail !== undefined) r.detail = str(b.detail, `${p}.detail`, 0, 1024);
      return r;
    });
  }
  if (v.releasedParents !== undefined) out.releasedParents = array(v.releasedParents, 'releasedParents', 64).map((id, i) => str(id, `releasedParents.${i}`, 1, 256));
  return out;
}

function heartbeat(v: unknown): HeartbeatRequest {
  if (!isObject(v)) return fail('(body)', `expected object, received ${kind(v)}`);
  const out: HeartbeatRequest = { peer: peerInfo(v.peer, 'peer') };
  if (v.completeTasks !== undefined) out.completeTasks = array(v.completeTasks, 'completeTasks', 100_000).map((d, i) => digest(d, `completeTasks.${i}`));
  if (v.uploading !== undefined) out.uploading = int(v.uploading, 'uploading', 0, 1_000_000);
  return out;
}

/** The fast path alone: its own first complaint, or the value. */
function attempt<T>(fn: (v: unknown) => T, value: unknown): Parsed<T> {
  try {
    return { ok: true, value: fn(value) };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, message: err.message };
    throw err;
  }
}

/**
 * The fast parser for valid bodies; a body it rejects goes through the zod schema, so the 400
 * names every bad field in zod's words (and, should the two ever disagree, zod's verdict holds).
 */
function parser<T>(fn: (v: unknown) => T, reference: z.ZodType<T, unknown>): BodyParser<T> {
  return {
    parse(value) {
      const fast = attempt(fn, value);
      if (fast.ok) return fast;
      const ref = reference.safeParse(value);
      return ref.success ? { ok: true, value: ref.data } : { ok: false, message: describeIssues(ref.error) };
    },
  };
}

/** Only the fast path, for tests that compare it with the schemas. */
export function fastParse<T>(kind: 'announce' | 'heartbeat', value: unknown): Parsed<T> {
  return attempt((kind === 'announce' ? announce : heartbeat) as (v: unknown) => T, value);
}

export const announceParser = parser(announce, announceSchema);
export const heartbeatParser = parser(heartbeat, heartbeatSchema);

// Replies: a peer handed out as a parent is serialised once per PeerInfo object (the core keeps
// the same object while the peer's announced info does not change), a manifest once per manifest.
const peerJson = new WeakMap<PeerInfo, string>();
const manifestJson = new WeakMap<PieceManifest, string>();

function cached<K extends object>(map: WeakMap<K, string>, key: K): string {
  let s = map.get(key);
  if (s === undefined) map.set(key, (s = JSON.stringify(key)));
  return s;
}

/** The announce reply's JSON, equal to JSON.stringify of the same object with its keys in this order. */
export function announceReplyJson(r: AnnounceResponse): string {
  let parents = '';
  for (let i = 0; i < r.parents.length; i++) parents += (i ? ',' : '') + cached(peerJson, r.parents[i]!);
  const pieces = r.pieces ? `,"pieces":${cached(manifestJson, r.pieces)}` : '';
  const spread = r.swapSpreadMs !== undefined ? `,"swapSpreadMs":${r.swapSpreadMs}` : '';
  return `{"parents":[${parents}]${pieces},"announceIntervalMs":${r.announceIntervalMs},"backToSource":${r.backToSource}${spread}}`;
}
