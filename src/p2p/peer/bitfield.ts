// Which pieces a peer holds. Wire form (protocol.ts BitfieldResponse): base64 of a big-endian
// bitfield, bit i = piece i, so piece 0 is the high bit of byte 0 (as in BitTorrent). Spare bits
// in the last byte are zero.
import { PeerError } from './errors.js';

export class Bitfield {
  readonly size: number;
  private readonly bytes: Uint8Array;
  private held = 0;

  constructor(size: number, bytes?: Uint8Array) {
    if (!Number.isSafeInteger(size) || size < 0) throw new PeerError('BITFIELD_INVALID', `bitfield size must be a non-negative integer, got ${size}`);
    this.size = size;
    const length = Math.ceil(size / 8);
    if (bytes === undefined) {
      this.bytes = new Uint8Array(length);
      return;
    }
    if (bytes.length !== length) throw new PeerError('BITFIELD_INVALID', `a bitfield of ${size} pieces has ${length} bytes, got ${bytes.length}`);
    const spare = length * 8 - size;
    // A set spare bit means the sender disagrees with us about the piece count: refuse, don't guess.
    if (spare > 0 && (bytes[length - 1]! & ((1 << spare) - 1)) !== 0) {
      throw new PeerError('BITFIELD_INVALID', `bitfield of ${size} pieces has bits set past the last piece`);
    }
    this.bytes = Uint8Array.from(bytes);
    for (const b of this.bytes) this.held += popcount(b);
  }

  static full(size: number): Bitfield {
    const bf = new Bitfield(size);
    for (let i = 0; i < size; i++) bf.set(i);
    return bf;
  }

  static fromBase64(b64: string, size: number): Bitfield {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new PeerError('BITFIELD_INVALID', 'bitfield is not base64');
    return new Bitfield(size, Buffer.from(b64, 'base64'));
  }

  /** Sets bit i; returns true if it was not set before. */
  set(i: number): boolean {
    this.check(i);
    const mask = 0x80 >> (i & 7);
    const at = i >> 3;
    if (this.bytes[at]! & mask) return false;
    this.bytes[at]! |= mask;
    this.held++;
    return true;
  }

  /** Clears bit i; returns true if it was set. */
  clear(i: number): boolean {
    this.check(i);
    const mask = 0x80 >> (i & 7);
    const at = i >> 3;
    if (!(this.bytes[at]! & mask)) return false;
    this.bytes[at]! &= ~mask;
    this.held--;
    return true;
  }

  has(i: number): boolean {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) return false;
    return (this.bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0;
  }

  get count(): number {
    return this.held;
  }

  isComplete(): boolean {
    return this.held === this.size;
  }

  /** Indices not set, ascending. */
  missing(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) if (!this.has(i)) out.push(i);
    return out;
  }

  clone(): Bitfield {
    return new Bitfield(this.size, this.bytes);
  }

  /**
   * The live bytes, not a copy: for hot loops that read many bitfields a byte at a time (the
   * piece picker's availability count). Callers must not write to it.
   */
  rawBytes(): Readonly<Uint8Array> {
    return this.bytes;
  }

  toBytes(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }

  toBase64(): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('base64');
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new PeerError('PIECE_OUT_OF_RANGE', `piece ${i} is outside 0..${this.size - 1}`);
  }
}

function popcount(b: number): number {
  let n = 0;
  for (let v = b; v; v &= v - 1) n++;
  return n;
}
