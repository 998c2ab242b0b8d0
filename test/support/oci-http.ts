// Shared helpers for the OCI Distribution Spec v1.1 conformance suite (test/conformance/*.test.ts).
//
// The suite talks HTTP with undici's low-level `Agent.request`, which sends the request path exactly as given
// (no `..` normalisation, no re-encoding of %2F), never follows redirects and lets us set Content-Length,
// Content-Range and Range ourselves.
//
// Target selection, as in the upstream suite:
//   OCI_ROOT_URL   run against this registry (e.g. http://127.0.0.1:5000) instead of starting Shoal
//   OCI_NAMESPACE  prefix for the repository names the tests create (default "conformance")
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { before, after } from 'node:test';
import { Agent } from 'undici';
import { startShoal, type RunningShoal } from './server.js';

// ---------------------------------------------------------------------------------------------------------------
// Media types and well-known values

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  helmConfig: 'application/vnd.cncf.helm.config.v1+json',
  helmChart: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
  helmProvenance: 'application/vnd.cncf.helm.chart.provenance.v1.prov',
  octet: 'application/octet-stream',
} as const;

/** Every manifest type the suite pushes; sent as Accept on manifest GET/HEAD. */
export const ACCEPT_ALL_MANIFESTS = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerManifestList].join(', ');

/** The OCI empty descriptor blob `{}`. */
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Error codes the spec allows (code-1 … code-14). */
export const SPEC_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const;
/** Legacy Docker codes that clients "MAY encounter" (spec: Legacy Docker support error codes) plus CNCF Distribution extras. */
export const LEGACY_ERROR_CODES = ['TAG_INVALID', 'MANIFEST_UNVERIFIED', 'RANGE_INVALID', 'PAGINATION_NUMBER_INVALID', 'UNAVAILABLE'] as const;
export const KNOWN_ERROR_CODES: readonly string[] = [...SPEC_ERROR_CODES, ...LEGACY_ERROR_CODES];

// ---------------------------------------------------------------------------------------------------------------
// Registry under test

export interface TestRegistry {
  /** Base URL, e.g. http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  client: RegistryClient;
  /** True when OCI_ROOT_URL points the suite at a registry we did not start. */
  external: boolean;
  /** Last lines of the server's output (Shoal only), for diagnostics. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

/** Starts Shoal (or attaches to OCI_ROOT_URL). One per test file: call from `before`, stop from `after`. */
/**
 * One registry per test file: started before the file's tests, stopped after them, with any 5xx
 * the suite provoked (and the server log tail) printed for diagnosis.
 */
export function registryPerFile(onStart: (reg: TestRegistry) => void): void {
  let reg: TestRegistry | undefined;
  before(async () => {
    reg = await startRegistry();
    onStart(reg);
  });
  after(async () => {
    if (reg && reg.client.serverErrors.length > 0) {
      console.error(`server errors seen:\n${reg.client.serverErrors.join('\n')}\n--- server log tail ---\n${reg.logTail()}`);
    }
    await reg?.stop();
  });
}

export async function startRegistry(): Promise<TestRegistry> {
  const root = process.env.OCI_ROOT_URL?.trim();
  if (root) {
    const url = root.replace(/\/+$/, '');
    const client = new RegistryClient(url);
    return { url, client, external: true, logTail: () => '', stop: async () => client.close() };
  }
  const shoal: RunningShoal = await startShoal();
  const client = new RegistryClient(shoal.url);
  return {
    url: shoal.url,
    client,
    external: false,
    logTail: (n = 40) => shoal.output.slice(-n).join('\n'),
    stop: async () => {
      await client.close();
      await shoal.stop();
    },
  };
}

const namespace = (process.env.OCI_NAMESPACE?.trim() || 'conformance').replace(/\/+$/, '');

/** A fresh, valid repository name such as `conformance/push-chunked-k3x9q2`. */
export function uniqueRepo(label: string): string {
  const clean = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${namespace}/${clean}-${randomBytes(4).toString('hex')}`;
}

/** A random tag that matches the spec's tag grammar. */
export function uniqueTag(prefix = 't'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface RequestOptions {
  headers?: Record<string, string | number>;
  /** Buffer/string are sent with Content-Length; a Readable is sent with chunked transfer encoding. */
  body?: Buffer | string | Readable;
  /** Query parameters appended to the path; array values repeat the key (e.g. tag=a&tag=b). */
  query?: Record<string, string | number | Array<string | number>>;
}

export class HttpResponse {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly headers: Record<string, string | string[] | undefined>,
    readonly body: Buffer,
  ) {}

  /** The header's value; repeated headers are joined with ", " (RFC 9110 list semantics). */
  header(name: string): string | undefined {
    const v = this.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  /** Each occurrence of a header as sent. */
  headerValues(name: string): string[] {
    const v = this.headers[name.toLowerCase()];
    if (v === undefined) return [];
    return Array.isArray(v) ? v : [v];
  }

  text(): string {
    return this.body.toString('utf8');
  }

  json<T = any>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (err) {
      throw new assert.AssertionError({
        message: `${this.describe()}: body is not JSON (${(err as Error).message}): ${this.snippet()}`,
      });
    }
  }

  snippet(max = 400): string {
    const t = this.text();
    return t.length > max ? `${t.slice(0, max)}…(${t.length} bytes)` : t;
  }

  /** "PUT /v2/x/manifests/y -> 400", for assertion messages. */
  describe(): string {
    return `${this.method} ${this.url} -> ${this.status}`;
  }
}

export class RegistryClient {
  readonly origin: string;
  private readonly agent = new Agent({ keepAliveTimeout: 5_000, connections: 8 });
  /** Every 5xx response seen, for diagnostics. */
  readonly serverErrors: string[] = [];

  constructor(baseUrl: string) {
    this.origin = new URL(baseUrl).origin;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** Turns a Location header (absolute or relative) into a request target for this client. */
  resolve(location: string): string {
    if (/^https?:\/\//i.test(location)) return location;
    return new URL(location, this.origin + '/').toString();
  }

  /**
   * Sends a request. `target` is a path ("/v2/..."), used verbatim, or an absolute URL (e.g. a Location header).
   * The body is always read completely.
   */
  async request(method: string, target: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    let origin = this.origin;
    let path = target;
    if (/^https?:\/\//i.test(target)) {
      const u = new URL(target);
      origin = u.origin;
      path = u.pathname + u.search;
    }
    if (opts.query) path = withQuery(path, opts.query);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = String(v);
    let body: Buffer | Readable | undefined;
    if (typeof opts.body === 'string') body = Buffer.from(opts.body);
    else body = opts.body;
    if (Buffer.isBuffer(body) && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    let status: number;
    let resHeaders: Record<string, string | string[] | undefined>;
    let buf: Buffer;
    try {
      const res = await this.agent.request({ origin, path, method, headers, body });
      status = res.statusCode;
      resHeaders = res.headers as Record<string, string | string[] | undefined>;
      buf = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      // e.g. the server closed the connection or sent a body shorter than its Content-Length
      const e = err as Error & { code?: string };
      throw new assert.AssertionError({ message: `${method} ${path}: no valid HTTP response (${e.code ?? e.name}: ${e.message})` });
    }
    const out = new HttpResponse(method, path, status, resHeaders, buf);
    if (out.status >= 500) this.serverErrors.push(`${out.describe()}: ${out.snippet(200)}`);
    return out;
  }

  get(target: string, opts?: RequestOptions) {
    return this.request('GET', target, opts);
  }
  head(target: string, opts?: RequestOptions) {
    return this.request('HEAD', target, opts);
  }
  put(target: string, opts?: RequestOptions) {
    return this.request('PUT', target, opts);
  }
  post(target: string, opts?: RequestOptions) {
    return this.request('POST', target, opts);
  }
  patch(target: string, opts?: RequestOptions) {
    return this.request('PATCH', target, opts);
  }
  delete(target: string, opts?: RequestOptions) {
    return this.request('DELETE', target, opts);
  }
}

/** Appends query parameters to a path that may already carry a query string. */
export function withQuery(path: string, query: NonNullable<RequestOptions['query']>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    for (const item of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(item))}`);
  }
  if (parts.length === 0) return path;
  return path + (path.includes('?') ? '&' : '?') + parts.join('&');
}

// ---------------------------------------------------------------------------------------------------------------
// Content

export type DigestAlgorithm = 'sha256' | 'sha512';

export function digestOf(data: Buffer | string, algo: DigestAlgorithm = 'sha256'): string {
  return `${algo}:${createHash(algo).update(data).digest('hex')}`;
}

export interface BlobData {
  data: Buffer;
  digest: string;
  size: number;
}

export function blobOf(data: Buffer | string, algo: DigestAlgorithm = 'sha256'): BlobData {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return { data: buf, digest: digestOf(buf, algo), size: buf.length };
}

/** Random bytes of the given size and their digest. */
export function randomBlob(size: number, algo: DigestAlgorithm = 'sha256'): BlobData {
  return blobOf(randomBytes(size), algo);
}

export const EMPTY_JSON_BLOB: BlobData = blobOf('{}');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
  urls?: string[];
  data?: string;
  [extra: string]: unknown;
}

export function descriptor(blob: BlobData, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: blob.digest, size: blob.size, ...extra };
}

/** A manifest (or index) ready to push: its exact bytes, digest and media type. */
export interface ManifestData {
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: string;
  /** Parsed form, for building referrer expectations. */
  json: any;
}

export function manifestOf(doc: unknown, mediaType: string, algo: DigestAlgorithm = 'sha256'): ManifestData {
  const bytes = Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
  return { bytes, digest: digestOf(bytes, algo), size: bytes.length, mediaType, json: JSON.parse(bytes.toString('utf8')) };
}

export function manifestDescriptor(m: ManifestData, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: m.mediaType, digest: m.digest, size: m.size, ...extra };
}

/** A small but valid OCI image config for a platform. */
export function imageConfig(layers: BlobData[], platform = { os: 'linux', architecture: 'amd64' }): BlobData {
  return blobOf(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: platform.architecture,
      os: platform.os,
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l.data)) },
      history: layers.map(() => ({ created_by: 'conformance' })),
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Push helpers (fail loudly, with the response, when the registry misbehaves)

function fail(res: HttpResponse, what: string): never {
  throw new assert.AssertionError({ message: `${what}: ${res.describe()} ${res.snippet()}` });
}

/** Monolithic POST then PUT ?digest=. Asserts 202 then 201. */
export async function pushBlob(client: RegistryClient, repo: string, blob: BlobData): Promise<HttpResponse> {
  const post = await client.post(`/v2/${repo}/blobs/uploads/`, { headers: { 'content-length': 0 } });
  if (post.status !== 202) fail(post, 'blob upload POST should answer 202');
  const loc = post.header('location');
  if (!loc) fail(post, 'blob upload POST has no Location');
  const put = await client.put(client.resolve(loc), {
    query: { digest: blob.digest },
    headers: { 'content-type': MT.octet },
    body: blob.data,
  });
  if (put.status !== 201) fail(put, `blob PUT of ${blob.digest} should answer 201`);
  return put;
}

export async function pushBlobs(client: RegistryClient, repo: string, blobs: BlobData[]): Promise<void> {
  for (const b of blobs) await pushBlob(client, repo, b);
}

/** PUT /v2/<repo>/manifests/<ref>. Asserts 201 unless `expectStatus` says otherwise. */
export async function pushManifest(
  client: RegistryClient,
  repo: string,
  ref: string,
  m: ManifestData,
  opts: { query?: RequestOptions['query']; contentType?: string; expectStatus?: number | null } = {},
): Promise<HttpResponse> {
  const res = await client.put(`/v2/${repo}/manifests/${ref}`, {
    headers: { 'content-type': opts.contentType ?? m.mediaType },
    body: m.bytes,
    query: opts.query,
  });
  const expect = opts.expectStatus === undefined ? 201 : opts.expectStatus;
  if (expect !== null && res.status !== expect) fail(res, `manifest PUT ${repo}:${ref} should answer ${expect}`);
  return res;
}

export interface ImageOptions {
  layers?: number;
  layerSize?: number;
  layerMediaType?: string;
  layerBlobs?: BlobData[];
  configMediaType?: string;
  config?: BlobData;
  artifactType?: string;
  annotations?: Record<string, string>;
  subject?: Descriptor;
  platform?: { os: string; architecture: string };
  algo?: DigestAlgorithm;
  /** Extra top-level fields (custom fields). */
  extra?: Record<string, unknown>;
}

export interface BuiltImage {
  manifest: ManifestData;
  config: BlobData;
  layers: BlobData[];
  blobs: BlobData[];
}

/** Builds an OCI image manifest (not pushed). */
export function buildImage(opts: ImageOptions = {}): BuiltImage {
  const algo = opts.algo ?? 'sha256';
  const layers =
    opts.layerBlobs ?? Array.from({ length: opts.layers ?? 1 }, () => randomBlob(opts.layerSize ?? 256, algo));
  const config = opts.config ?? (algo === 'sha256' ? imageConfig(layers, opts.platform) : blobOf(imageConfig(layers, opts.platform).data, algo));
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    config: descriptor(config, opts.configMediaType ?? MT.ociConfig),
    layers: layers.map((l) => descriptor(l, opts.layerMediaType ?? MT.ociLayerGzip)),
    ...(opts.subject ? { subject: opts.subject } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
    ...(opts.extra ?? {}),
  };
  const uniqueBlobs = new Map<string, BlobData>();
  for (const b of [config, ...layers]) uniqueBlobs.set(b.digest, b);
  return { manifest: manifestOf(doc, MT.ociManifest, algo), config, layers, blobs: [...uniqueBlobs.values()] };
}

/** Builds an OCI image, uploads its blobs and pushes the manifest to `ref` (a tag, or its digest when omitted). */
export async function pushImage(
  client: RegistryClient,
  repo: string,
  opts: ImageOptions & { ref?: string } = {},
): Promise<BuiltImage & { response: HttpResponse }> {
  const img = buildImage(opts);
  await pushBlobs(client, repo, img.blobs);
  const response = await pushManifest(client, repo, opts.ref ?? img.manifest.digest, img.manifest);
  return { ...img, response };
}

/** Builds an artifact manifest: artifactType set, empty `{}` config, one layer of the given type. */
export function buildArtifact(opts: {
  artifactType: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
  layerMediaType?: string;
  layer?: BlobData;
}): BuiltImage {
  const layer = opts.layer ?? randomBlob(64);
  return buildImage({
    artifactType: opts.artifactType,
    config: EMPTY_JSON_BLOB,
    configMediaType: MT.ociEmpty,
    layerBlobs: [layer],
    layerMediaType: opts.layerMediaType ?? 'application/vnd.example.data.v1',
    subject: opts.subject,
    annotations: opts.annotations,
  });
}

export async function pushArtifact(
  client: RegistryClient,
  repo: string,
  opts: Parameters<typeof buildArtifact>[0] & { ref?: string },
): Promise<BuiltImage & { response: HttpResponse }> {
  const art = buildArtifact(opts);
  await pushBlobs(client, repo, art.blobs);
  const response = await pushManifest(client, repo, opts.ref ?? art.manifest.digest, art.manifest);
  return { ...art, response };
}

/** An OCI image index over the given manifests. */
export function buildIndex(
  children: Array<{ manifest: ManifestData; platform?: Descriptor['platform'] }>,
  opts: { artifactType?: string; subject?: Descriptor; annotations?: Record<string, string>; mediaType?: string; algo?: DigestAlgorithm } = {},
): ManifestData {
  const mediaType = opts.mediaType ?? MT.ociIndex;
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    manifests: children.map((c) => manifestDescriptor(c.manifest, c.platform ? { platform: c.platform } : {})),
    ...(opts.subject ? { subject: opts.subject } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  return manifestOf(doc, mediaType, opts.algo);
}

// ---------------------------------------------------------------------------------------------------------------
// Assertions

export function assertStatus(res: HttpResponse, expected: number | number[], what = ''): void {
  const list = Array.isArray(expected) ? expected : [expected];
  if (!list.includes(res.status)) {
    throw new assert.AssertionError({
      message: `${what ? what + ': ' : ''}${res.describe()}, expected ${list.join(' or ')}; body: ${res.snippet()}`,
      actual: res.status,
      expected: list.length === 1 ? list[0] : list,
      operator: 'oneOf',
    });
  }
}

export interface OciErrorBody {
  errors: Array<{ code: string; message?: string; detail?: unknown }>;
}

/**
 * Asserts the spec's error body: JSON `{"errors":[{"code","message","detail"?}]}` with upper-case codes from the
 * known list; with `codes`, one of the errors must carry one of those codes.
 */
export function assertErrorBody(res: HttpResponse, codes?: string | string[]): OciErrorBody {
  const want = codes === undefined ? undefined : Array.isArray(codes) ? codes : [codes];
  assert.ok(res.body.length > 0, `${res.describe()}: expected an OCI error body, got an empty body`);
  const body = res.json<OciErrorBody>();
  assert.ok(body && Array.isArray(body.errors), `${res.describe()}: error body lacks an "errors" array: ${res.snippet()}`);
  assert.ok(body.errors.length > 0, `${res.describe()}: "errors" is empty`);
  for (const e of body.errors) {
    assert.equal(typeof e.code, 'string', `${res.describe()}: error without a string code: ${res.snippet()}`);
    assert.match(e.code, /^[A-Z_]+$/, `${res.describe()}: code ${e.code} must be upper-case letters and underscores`);
    assert.ok(KNOWN_ERROR_CODES.includes(e.code), `${res.describe()}: code ${e.code} is not a spec error code`);
    if (e.message !== undefined) assert.equal(typeof e.message, 'string', `${res.describe()}: message must be a string`);
  }
  if (want) {
    const got = body.errors.map((e) => e.code);
    assert.ok(
      got.some((c) => want.includes(c)),
      `${res.describe()}: expected error code ${want.join(' or ')}, got ${got.join(', ')}`,
    );
  }
  return body;
}

/**
 * A 4XX body "MAY be in any format", but if it is JSON it MUST be the spec's error format. Checks the format (and
 * `codes`, if given) only when the body is JSON; an empty or non-JSON body passes.
 */
export function assertErrorBodyIfJson(res: HttpResponse, codes?: string | string[]): void {
  if (res.method === 'HEAD' || res.body.length === 0) return;
  const ctype = res.header('content-type') ?? '';
  const looksJson = /json/i.test(ctype) || /^\s*[{[]/.test(res.text());
  if (looksJson) assertErrorBody(res, codes);
}

/** Status plus error code in one go. */
export function assertError(res: HttpResponse, status: number | number[], codes?: string | string[]): OciErrorBody | undefined {
  assertStatus(res, status);
  if (res.method === 'HEAD') return undefined; // HEAD responses have no body
  return assertErrorBody(res, codes);
}

/** Asserts the response carries the given digest in Docker-Content-Digest. */
export function assertDigestHeader(res: HttpResponse, digest: string): void {
  assert.equal(res.header('docker-content-digest'), digest, `${res.describe()}: Docker-Content-Digest`);
}

export function assertContentLength(res: HttpResponse, size: number): void {
  assert.equal(res.header('content-length'), String(size), `${res.describe()}: Content-Length`);
}

/** Parses a `Link: <url>; rel="next"` header; returns the URL or undefined. */
export function parseNextLink(res: HttpResponse): string | undefined {
  const link = res.header('link');
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(^|;)\s*rel\s*=\s*"?next"?\s*(;|$)/i.test(m[2]!)) return m[1];
  }
  throw new assert.AssertionError({ message: `${res.describe()}: Link header without rel="next": ${link}` });
}

/** ASCII ("ASCIIbetical") order, as Go's sort.Strings. */
export function asciiSorted(list: string[]): string[] {
  return [...list].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** True if `list` is in ASCII order or in case-insensitive lexical order (the spec allows both). */
export function isLexicallySorted(list: string[]): boolean {
  const ascii = asciiSorted(list);
  if (ascii.every((v, i) => v === list[i])) return true;
  const ci = [...list].sort((a, b) => {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
  return ci.every((v, i) => v === list[i]);
}

/** Wraps a buffer as a stream of small pieces, so undici sends it with chunked transfer encoding (no Content-Length). */
export function streamOf(data: Buffer, pieceSize = 1024): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += pieceSize) pieces.push(data.subarray(i, i + pieceSize));
  return Readable.from(pieces);
}

/** Reads the upload session's offset from a `Range: 0-N` header; returns N. */
export function rangeEnd(res: HttpResponse): number {
  const r = res.header('range');
  assert.ok(r, `${res.describe()}: missing Range header`);
  const m = /^0-(\d+)$/.exec(r);
  assert.ok(m, `${res.describe()}: Range header ${r} does not match 0-<end>`);
  return Number(m[1]);
}
