// The agents' clients: each asks for the image's blobs in order, layerConcurrency at a time (curl in
// bench/p2p, containerd through the agent's mirror), and reads each one front to back as its pieces
// land. Where a reader stops at a piece not held yet, the real agent's PieceTask emits 'waiting' and
// swarm-jobs.ts turns it into TaskDownloader.setSequentialFrom: the engines do the same through
// Holding.onReaderWait. Reading itself takes no time (the bench's clients hash at disk speed).
import type { Holding, Layer, SimHost } from './world.js';

interface Client {
  /** The next layer this client asks for. */
  next: number;
  /** Layers being read now, and layers whose download already ended (read through at once when asked). */
  reading: Set<number>;
  done: Set<number>;
}

export class ClientReaders {
  private readonly clients = new Map<SimHost, Client>();

  constructor(
    private readonly layers: readonly Layer[],
    private readonly atOnce: number,
    private readonly holding: (h: SimHost, layer: Layer) => Holding,
    private readonly now: () => number,
  ) {}

  /** The client starts its pull: it asks for the first layerConcurrency blobs. */
  start(h: SimHost): void {
    this.clients.set(h, { next: 0, reading: new Set(), done: new Set() });
    for (let k = 0; k < this.atOnce; k++) this.ask(h);
  }

  /** The agent finished `layer` (from the swarm or the registry): its reader, if any, is through. */
  layerDone(h: SimHost, layer: Layer): void {
    const c = this.clients.get(h);
    if (!c) return;
    c.done.add(layer.index);
    if (!c.reading.delete(layer.index)) return;
    const x = h.holdings[layer.index];
    if (x) x.readAt = -1;
    this.ask(h);
  }

  /** A piece landed where a reader waits on it: read on to the next piece not held. */
  advance(h: SimHost, x: Holding): void {
    let i = x.readAt;
    const n = x.layer.numPieces;
    while (i < n && x.bf.has(i)) i++;
    // The client's first body byte (curl's time_starttransfer in bench/p2p): the first time any of
    // its readers moves.
    if (i > x.readAt && h.firstByteAt < 0) h.firstByteAt = this.now();
    x.readAt = i;
    if (i < n) x.onReaderWait?.(i);
  }

  private ask(h: SimHost): void {
    const c = this.clients.get(h)!;
    while (c.next < this.layers.length) {
      const layer = this.layers[c.next++]!;
      // Already downloaded: the client reads it through and asks for the next one.
      if (c.done.has(layer.index)) continue;
      c.reading.add(layer.index);
      const x = this.holding(h, layer);
      x.readAt = 0;
      this.advance(h, x);
      return;
    }
  }
}
