// Token signing keys: ES256 (P-256) in <data>/auth/keys, private keys mode 0600. Rotation makes a
// new signing key and keeps the old public keys for verification until every token they signed
// has expired; then they are deleted.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface VerifyKey {
  kid: string;
  key: KeyObject;
  /** When this key stopped signing (null while it is the signing key). */
  retiredAt: number | null;
}

export interface KeyRingOptions {
  dir: string;
  /** A signing key older than this is replaced at the next rotate() check. */
  rotateAfterMs: number;
  /** Longest token lifetime: retired public keys are kept this long after retirement. */
  maxTokenTtlMs: number;
  now?: () => number;
}

export class KeyRing {
  private signing!: { kid: string; key: KeyObject; createdAt: number };
  private readonly verify = new Map<string, VerifyKey>();
  private readonly now: () => number;

  constructor(private readonly opts: KeyRingOptions) {
    this.now = opts.now ?? Date.now;
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.load();
  }

  get kid(): string {
    return this.signing.kid;
  }
  get signingKey(): KeyObject {
    return this.signing.key;
  }

  /** The public key for a token's kid, if it is still trusted. */
  publicKey(kid: string): KeyObject | undefined {
    return this.verify.get(kid)?.key;
  }

  kids(): string[] {
    return [...this.verify.keys()];
  }

  /** Replaces the signing key when it is due (or when forced); prunes expired public keys. */
  rotate(force = false): boolean {
    const due = force || this.now() - this.signing.createdAt >= this.opts.rotateAfterMs;
    if (due) {
      const old = this.signing.kid;
      rmSync(join(this.opts.dir, `${old}.key.pem`), { force: true });
      writeFileSync(join(this.opts.dir, `${old}.retired`), String(this.now()));
      this.verify.get(old)!.retiredAt = this.now();
      this.create();
    }
    for (const [kid, v] of this.verify) {
      if (v.retiredAt !== null && this.now() - v.retiredAt > this.opts.maxTokenTtlMs) {
        this.verify.delete(kid);
        for (const suffix of ['pub.pem', 'retired']) rmSync(join(this.opts.dir, `${kid}.${suffix}`), { force: true });
      }
    }
    return due;
  }

  private load(): void {
    const files = readdirSync(this.opts.dir);
    let newest: { kid: string; key: KeyObject; createdAt: number } | undefined;
    for (const f of files.filter((f) => f.endsWith('.pub.pem'))) {
      const kid = f.slice(0, -'.pub.pem'.length);
      const key = createPublicKey(readFileSync(join(this.opts.dir, f)));
      const retiredFile = join(this.opts.dir, `${kid}.retired`);
      const retiredAt = files.includes(`${kid}.retired`) ? Number(readFileSync(retiredFile, 'utf8')) : null;
      this.verify.set(kid, { kid, key, retiredAt });
      if (retiredAt === null && files.includes(`${kid}.key.pem`)) {
        const path = join(this.opts.dir, `${kid}.key.pem`);
        const createdAt = statSync(path).mtimeMs;
        if (!newest || createdAt > newest.createdAt) newest = { kid, key: createPrivateKey(readFileSync(path)), createdAt };
      }
    }
    if (newest) this.signing = newest;
    else this.create();
  }

  private create(): void {
    const kid = `${new Date(this.now()).toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(6).toString('hex')}`;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // Write-then-rename so a crash never leaves a half-written key.
    const priv = join(this.opts.dir, `${kid}.key.pem`);
    writeFileSync(`${priv}.tmp`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    chmodSync(`${priv}.tmp`, 0o600);
    renameSync(`${priv}.tmp`, priv);
    const pub = join(this.opts.dir, `${kid}.pub.pem`);
    writeFileSync(`${pub}.tmp`, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
    renameSync(`${pub}.tmp`, pub);
    this.signing = { kid, key: privateKey, createdAt: this.now() };
    this.verify.set(kid, { kid, key: publicKey, retiredAt: null });
  }
}
