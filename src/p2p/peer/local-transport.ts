// An in-process PeerTransport: peers are PieceStores in the same process, looked up by peer id.
// For tests of the seed/agent wiring and small simulations; the same semantics as the HTTP data
// plane (404 when a piece is not held, bitfield long-poll) without sockets.
import type { Digest } from '../../oci/digest.js';
import type { BitfieldResponse, PeerInfo } from '../protocol.js';
import { systemClock, abortReason, type Clock } from './clock.js';
import { PeerTransportError } from './errors.js';
import type { PeerTransport } from './download-types.js';
import type { PieceStore } from './piece-store.js';
import type { PieceTask } from './piece-task.js';

export interface LocalPeerHooks {
  /** Replace or corrupt what a piece request returns (return the bytes to send). */
  piece?: (index: number, data: Buffer) => Buffer | Promise<Buffer>;
  /** Throw here to simulate a failure before anything is sent. */
  before?: (kind: 'bitfield' | 'piece', index?: number) => void | Promise<void>;
}

export interface LocalTransportOptions {
  clock?: Clock;
  /** Also offer pieceStream (pieces in a few slices), so downloads take the streaming path. */
  streaming?: boolean;
}

export class LocalTransport implements PeerTransport {
  private readonly peers = new Map<string, { store: PieceStore; hooks: LocalPeerHooks }>();
  private readonly clock: Clock;
  readonly pieceStream?: PeerTransport['pieceStream'];

  constructor(opts: LocalTransportOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    if (opts.streaming) {
      this.pieceStream = async (parent, digest, index, signal) => {
        const data = await this.piece(parent, digest, index, signal);
        const step = Math.max(1, Math.ceil(data.length / 3));
        const self = this;
        return (async function* () {
          for (let off = 0; off < data.length; off += step) {
            await Promise.resolve();
            if (signal.aborted) throw new PeerTransportError('aborted', 'aborted', { cause: abortReason(signal) });
            if (!self.peers.has(parent.id)) throw new PeerTransportError('unreachable', `${parent.id}: connection reset`);
            yield data.subarray(off, off + step);
          }
        })();
      };
    }
  }

  register(peerId: string, store: PieceStore, hooks: LocalPeerHooks = {}): void {
    this.peers.set(peerId, { store, hooks });
  }

  /** The peer vanishes: every later request to it fails as unreachable. */
  unregister(peerId: string): void {
    this.peers.delete(peerId);
  }

  private peer(parent: PeerInfo): { store: PieceStore; hooks: LocalPeerHooks } {
    const p = this.peers.get(parent.id);
    if (!p) throw new PeerTransportError('unreachable', `${parent.id}: connection refused`);
    return p;
  }

  /** Peers here show every piece they hold: no super-seeding views (server-routes.ts has them). */
  async bitfield(parent: PeerInfo, digest: Digest, since?: number, waitMs?: number, signal?: AbortSignal): Promise<BitfieldResponse> {
    const p = this.peer(parent);
    await p.hooks.before?.('bitfield');
    const task = await p.store.lookup(digest);
    if (!task) throw new PeerTransportError('not-found', `${parent.id}: no task for ${digest}`, { status: 404 });
    if (since !== undefined && waitMs && task.bitfield.count <= since && !task.bitfield.isComplete()) await this.waitForNews(task, since, waitMs, signal);
    if (!this.peers.has(parent.id)) throw new PeerTransportError('unreachable', `${parent.id}: connection reset`);
    return { bitfield: task.bitfield.toBase64(), count: task.bitfield.count, total: task.numPieces };
  }

  async piece(parent: PeerInfo, digest: Digest, index: number, signal: AbortSignal): Promise<Buffer> {
    const p = this.peer(parent);
    await p.hooks.before?.('piece', index);
    if (signal.aborted) throw new PeerTransportError('aborted', 'aborted', { cause: abortReason(signal) });
    const task = await p.store.lookup(digest);
    if (!task || !task.has(index)) throw new PeerTransportError('not-found', `${parent.id}: piece ${index} not held`, { status: 404 });
    const data = await task.readPiece(index);
    const out = p.hooks.piece ? await p.hooks.piece(index, data) : data;
    if (signal.aborted) throw new PeerTransportError('aborted', 'aborted', { cause: abortReason(signal) });
    if (!this.peers.has(parent.id)) throw new PeerTransportError('unreachable', `${parent.id}: connection reset`);
    return out;
  }

  private async waitForNews(task: PieceTask, since: number, waitMs: number, signal?: AbortSignal): Promise<void> {
    const ctl = new AbortController();
    const onPiece = () => {
      if (task.bitfield.count > since) ctl.abort();
    };
    const onAbort = () => ctl.abort();
    task.on('piece', onPiece);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.clock.sleep(waitMs, ctl.signal);
    } catch {
      /* woken early */
    } finally {
      task.off('piece', onPiece);
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) throw new PeerTransportError('aborted', 'aborted');
  }
}
