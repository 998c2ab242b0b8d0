// A small OCI registry client used by the seed (back-to-source), the agent (manifest proxy,
// authorisation checks), preheat (image → blobs) and, later, replication and the CLI.
// Handles the Docker token flow: a 401 with `WWW-Authenticate: Bearer realm=…` is answered by
// fetching a token from the realm (with basic credentials when configured) and retrying once.
import { Agent, request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../oci/media-types.js';

export const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ');

export interface ClientOptions {
  /** A fixed Authorization header value (e.g. passed through from a caller). */
  authorization?: string;
  /** Basic credentials, used directly or to obtain bearer tokens. */
  username?: string;
  password?: string;
  userAgent?: string;
  dispatcher?: Dispatcher;
  /** Per-request headers/body timeout. */
  timeoutMs?: number;
}

export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}

export interface BlobResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

const sharedAgent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });

export class RegistryClient {
  readonly base: string;
  private bearer = new Map<string, string>();

  constructor(baseUrl: string, private readonly opts: ClientOptions = {}) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /** Raw request with auth handling; the caller consumes or discards the body. */
  async send(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<BlobResponse> {
    const scopeKey = path.split('/').slice(0, -2).join('/');
    const attempt = async (): Promise<BlobResponse> => {
      const h: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'shoal-client/0.1', ...headers };
      const auth = this.authorizationFor(scopeKey);
      if (auth && !h.authorization) h.authorization = auth;
      const res = await request(`${this.base}${path}`, {
        method: method as Dispatcher.HttpMethod,
        headers: h,
        body,
        dispatcher: this.opts.dispatcher ?? sharedAgent,
        headersTimeout: this.opts.timeoutMs ?? 30_000,
        bodyTimeout: this.opts.timeoutMs ?? 300_000,
      });
      return { status: res.statusCode, headers: res.headers as BlobResponse['headers'], body: res.body };
    };
    let res = await attempt();
    if (res.status === 401 && !headers.authorization && (await this.tryBearer(res, scopeKey))) {
      res.body.resume();
      res = await attempt();
    }
    return res;
  }

  private authorizationFor(scopeKey: string): string | undefined {
    if (this.opts.authorization) return this.opts.authorization;
    const token = this.bearer.get(scopeKey);
    if (token) return `Bearer ${token}`;
    if (this.opts.username !== undefined) return `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64')}`;
    return undefined;
  }

  /** Follows a Bearer challenge to the token realm; true when a token was obtained. */
  private async tryBearer(res: BlobResponse, scopeKey: string): Promise<boolean> {
    const challenge = String(res.headers['www-authenticate'] ?? '');
    if (!/^Bearer /i.test(challenge) || this.opts.authorization) return false;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) return false;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    if (params.scope) url.searchParams.set('scope', params.scope);
    const headers: Record<string, string> = {};
    if (this.opts.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64')}`;
    const tr = await request(url, { headers, dispatcher: this.opts.dispatcher ?? sharedAgent });
    if (tr.statusCode !== 200) {
      tr.body.resume();
      return false;
    }
    const json = (await tr.body.json()) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) return false;
    this.bearer.set(scopeKey, token);
    return true;
  }

  async getManifest(repo: string, reference: string): Promise<FetchedManifest> {
    const res = await this.send('GET', `/v2/${repo}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (res.status !== 200) throw await toError(res, `GET manifest ${repo}:${reference}`);
    const body = await readStream(res.body, 16 * 1024 * 1024);
    const digest = reference.includes(':') ? (reference as Digest) : ((res.headers['docker-content-digest'] as Digest | undefined) ?? digestOf(body));
    if (digestOf(body, digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest ${repo}@${digest} from ${this.base} does not match its digest`);
    }
    return { digest, mediaType: String(res.headers['content-type'] ?? ''), body };
  }

  async headBlob(repo: string, digest: Digest, headers: Record<string, string> = {}): Promise<BlobResponse> {
    const res = await this.send('HEAD', `/v2/${repo}/blobs/${digest}`, headers);
    res.body.resume();
    return res;
  }

  async getBlob(repo: string, digest: Digest, headers: Record<string, string> = {}): Promise<BlobResponse> {
    return this.send('GET', `/v2/${repo}/blobs/${digest}`, headers);
  }

  /** Every blob an image needs (configs and layers, for every platform of an index). */
  async imageBlobs(repo: string, reference: string): Promise<{ digest: Digest; blobs: Descriptor[] }> {
    const top = await this.getManifest(repo, reference);
    const blobs = new Map<string, Descriptor>();
    const visit = async (m: FetchedManifest, depth: number) => {
      const parsed = parseManifest(m.body, m.mediaType);
      for (const b of parsed.blobs) blobs.set(b.digest, b);
      if (depth < 3) for (const child of parsed.manifests) await visit(await this.getManifest(repo, child.digest), depth + 1);
    };
    await visit(top, 0);
    return { digest: top.digest, blobs: [...blobs.values()] };
  }
}

/** Parses `repo:tag`, `repo@digest`, optionally prefixed with `host[:port]/` (returned separately). */
export function parseImageReference(ref: string): { host?: string; repo: string; reference: string } {
  let rest = ref;
  let host: string | undefined;
  const first = rest.split('/')[0]!;
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    rest = rest.slice(first.length + 1);
  }
  const at = rest.indexOf('@');
  if (at !== -1) return { host, repo: rest.slice(0, at), reference: rest.slice(at + 1) };
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) return { host, repo: rest.slice(0, colon), reference: rest.slice(colon + 1) };
  return { host, repo: rest, reference: 'latest' };
}

async function toError(res: BlobResponse, what: string): Promise<RegistryError> {
  let message = `${what}: registry answered ${res.status}`;
  try {
    const body = JSON.parse((await readStream(res.body, 1024 * 1024)).toString()) as { errors?: Array<{ code: string; message: string }> };
    if (body.errors?.[0]) message += ` ${body.errors[0].code}: ${body.errors[0].message}`;
  } catch {
    /* not JSON */
  }
  if (res.status === 404) return new RegistryError('MANIFEST_UNKNOWN', message);
  if (res.status === 401) return new RegistryError('UNAUTHORIZED', message);
  if (res.status === 403) return new RegistryError('DENIED', message);
  return new RegistryError('UNAVAILABLE', message, { status: 502 });
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readStream(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new RegistryError('SIZE_INVALID', `response larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, size);
}
