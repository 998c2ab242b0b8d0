// Builds small OCI images without a container engine: an own ustar writer,
// gzip from node:zlib, configs/manifests/indexes with correct digests and
// diff_ids, and an OCI image layout on disk (what `skopeo ... oci:DIR:TAG`
// and `umoci` read). Everything is also returned in memory so tests can push
// it over HTTP (see pushImage / pushIndex).
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** OCI media types, or Docker image manifest v2 schema 2 / manifest list. */
export type ImageFormat = 'oci' | 'docker';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export function sha256(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------- tar writer

export type TarEntry =
  | { type: 'file'; path: string; data: Uint8Array | string; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'dir'; path: string; mode?: number; mtime?: number; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string; mtime?: number; uid?: number; gid?: number };

/** Fixed default mtime so that layers are reproducible (2023-11-14T22:13:20Z). */
export const DEFAULT_MTIME = 1_700_000_000;

const BLOCK = 512;

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar: field too long (${bytes.length} > ${length}): ${value}`);
  bytes.copy(buf, offset);
}

/** Octal number, zero padded, NUL terminated, exactly `length` bytes. */
function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new Error(`tar: bad numeric field ${value}`);
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`tar: numeric field overflow ${value}`);
  writeString(buf, offset, length, digits.padStart(length - 1, '0') + '\0');
}

/** Splits a path into ustar (prefix, name) with name ≤ 100 and prefix ≤ 155 bytes. */
function splitPath(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  const body = path.endsWith('/') ? path.slice(0, -1) : path;
  const trail = path.endsWith('/') ? '/' : '';
  for (let i = body.length - 1; i > 0; i--) {
    if (body[i] !== '/') continue;
    const prefix = body.slice(0, i);
    const name = body.slice(i + 1) + trail;
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { prefix, name };
  }
  throw new Error(`tar: path too long for ustar: ${path}`);
}

function normalisePath(path: string, isDir: boolean): string {
  let p = path.replace(/^\/+/, '').replace(/^\.\//, '');
  if (p === '' || p.split('/').some((c) => c === '..')) throw new Error(`tar: bad path ${JSON.stringify(path)}`);
  if (isDir && !p.endsWith('/')) p += '/';
  if (!isDir) p = p.replace(/\/+$/, '');
  return p;
}

function tarHeader(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const path = normalisePath(entry.path, entry.type === 'dir');
  const { prefix, name } = splitPath(path);
  const mode = entry.type === 'symlink' ? 0o777 : (entry.mode ?? (entry.type === 'dir' ? 0o755 : 0o644));
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, mode & 0o7777);
  writeOctal(h, 108, 8, entry.uid ?? 0);
  writeOctal(h, 116, 8, entry.gid ?? 0);
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, entry.mtime ?? DEFAULT_MTIME);
  h.fill(0x20, 148, 156); // checksum is computed with the field as 8 spaces
  const typeflag = entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2';
  writeString(h, 156, 1, typeflag);
  if (entry.type === 'symlink') writeString(h, 157, 100, entry.target);
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 265, 32, (entry.uid ?? 0) === 0 ? 'root' : '');
  writeString(h, 297, 32, (entry.gid ?? 0) === 0 ? 'root' : '');
  writeOctal(h, 329, 8, 0);
  writeOctal(h, 337, 8, 0);
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  // six octal digits, NUL, space (the traditional layout)
  writeString(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** Serialises entries, in order, as a POSIX ustar archive (with the two zero end blocks). */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? Buffer.from(e.data) : Buffer.alloc(0);
    parts.push(tarHeader(e, data.length));
    if (data.length > 0) {
      parts.push(data);
      const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

/** Minimal ustar reader (for tests of the writer and for checking pulled layers). */
export function untar(archive: Uint8Array): Array<{ path: string; type: 'file' | 'dir' | 'symlink' | 'other'; mode: number; data: Buffer; target: string }> {
  const buf = Buffer.from(archive);
  const out: Array<{ path: string; type: 'file' | 'dir' | 'symlink' | 'other'; mode: number; data: Buffer; target: string }> = [];
  let off = 0;
  const str = (o: number, l: number) => {
    const s = buf.subarray(o, o + l);
    const nul = s.indexOf(0);
    return s.subarray(0, nul === -1 ? l : nul).toString('utf8');
  };
  while (off + BLOCK <= buf.length) {
    const header = buf.subarray(off, off + BLOCK);
    if (header.every((b) => b === 0)) break;
    const name = str(off, 100);
    const prefix = str(off + 345, 155);
    const mode = parseInt(str(off + 100, 8) || '0', 8);
    const size = parseInt(str(off + 124, 12) || '0', 8);
    const flag = str(off + 156, 1);
    const target = str(off + 157, 100);
    const path = prefix ? `${prefix}/${name}` : name;
    const data = Buffer.from(buf.subarray(off + BLOCK, off + BLOCK + size));
    const type = flag === '0' || flag === '' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : 'other';
    out.push({ path, type, mode, data, target });
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

// ------------------------------------------------------------ OCI structures

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** A content-addressed blob held in memory. */
export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface Layer extends Blob {
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  diffId: string;
  /** The uncompressed tar. */
  tar: Buffer;
}

export interface BuiltImage {
  kind: 'image';
  /** The manifest bytes exactly as stored/pushed; `digest` is their sha256. */
  manifest: Blob;
  config: Blob;
  layers: Layer[];
  platform: Platform;
  /** The parsed config, for assertions. */
  configJson: Record<string, unknown>;
}

export interface BuiltIndex {
  kind: 'index';
  index: Blob;
  images: BuiltImage[];
}

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: sha256(data), size: data.length, data };
}

function descriptor(b: Blob, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size, ...extra };
}

export function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** A tar+gzip layer from entries (or an uncompressed tar layer with `compress: false`). */
export function makeLayer(entries: TarEntry[], opts: { compress?: boolean } = {}): Layer {
  const raw = tar(entries);
  const compress = opts.compress ?? true;
  const data = compress ? gzipSync(raw, { level: 6 }) : raw;
  return { ...blob(compress ? MEDIA.ociLayerGzip : MEDIA.ociLayerTar, data), diffId: sha256(raw), tar: raw };
}

export interface ImageConfigOptions {
  platform?: Platform;
  cmd?: string[];
  env?: string[];
  labels?: Record<string, string>;
  created?: string;
  format?: ImageFormat;
}

/** An image (config + manifest) over the given layers. */
export function makeImage(layers: Layer[], opts: ImageConfigOptions = {}): BuiltImage {
  const platform = opts.platform ?? { architecture: 'amd64', os: 'linux' };
  const created = opts.created ?? '2023-11-14T22:13:20Z';
  const configJson: Record<string, unknown> = {
    created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: {
      Env: opts.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: opts.cmd ?? ['/bin/sh', '-c', 'cat /hello.txt'],
      WorkingDir: '/',
      ...(opts.labels ? { Labels: opts.labels } : {}),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created, created_by: `shoal test image builder: layer ${i}` })),
  };
  const docker = opts.format === 'docker';
  const config = blob(docker ? MEDIA.dockerConfig : MEDIA.ociConfig, jsonBytes(configJson));
  const layerDescriptor = (l: Layer): Descriptor => {
    if (!docker) return descriptor(l);
    if (l.mediaType !== MEDIA.ociLayerGzip) throw new Error('docker format needs gzip layers');
    return descriptor(l, { mediaType: MEDIA.dockerLayerGzip });
  };
  const manifestType = docker ? MEDIA.dockerManifest : MEDIA.ociManifest;
  const manifestJson = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: descriptor(config),
    layers: layers.map(layerDescriptor),
  };
  const manifest = blob(manifestType, jsonBytes(manifestJson));
  return { kind: 'image', manifest, config, layers, platform, configJson };
}

/** An OCI image index (or, for docker-format images, a Docker manifest list) over the given images. */
export function makeIndex(images: BuiltImage[], annotations?: Record<string, string>): BuiltIndex {
  const docker = images.length > 0 && images.every((i) => i.manifest.mediaType === MEDIA.dockerManifest);
  const type = docker ? MEDIA.dockerList : MEDIA.ociIndex;
  const indexJson = {
    schemaVersion: 2,
    mediaType: type,
    manifests: images.map((img) => descriptor(img.manifest, { platform: img.platform })),
    ...(annotations && !docker ? { annotations } : {}),
  };
  return { kind: 'index', index: blob(type, jsonBytes(indexJson)), images };
}

// ------------------------------------------------------- the busybox image

export const BUSYBOX_PATH = '/bin/busybox';

let busyboxCache: Buffer | undefined;
/** The static busybox binary from Debian's busybox-static package. */
export function busyboxBinary(path = BUSYBOX_PATH): Buffer {
  if (path === BUSYBOX_PATH && busyboxCache) return busyboxCache;
  const data = readFileSync(path);
  if (path === BUSYBOX_PATH) busyboxCache = data;
  return data;
}

export interface BusyboxImageOptions {
  /** Content of /hello.txt (default "hello from shoal\n"). Vary it to get distinct images. */
  hello?: string;
  /** Default: ['/bin/sh', '-c', 'cat /hello.txt']. */
  cmd?: string[];
  platform?: Platform;
  labels?: Record<string, string>;
  busyboxPath?: string;
  /** 'oci' (default) or 'docker' (schema 2 manifest / manifest list media types; HTTP push only). */
  format?: ImageFormat;
}

export const DEFAULT_HELLO = 'hello from shoal\n';

/**
 * The base layer: /bin/busybox (0755) with /bin/sh, /bin/cat, /bin/echo,
 * /bin/ls symlinks, plus empty /tmp (1777), /etc, /proc, /sys, /dev.
 */
export function busyboxLayer(busyboxPath?: string): Layer {
  return makeLayer([
    { type: 'dir', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', data: busyboxBinary(busyboxPath), mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'symlink', path: 'bin/cat', target: 'busybox' },
    { type: 'symlink', path: 'bin/echo', target: 'busybox' },
    { type: 'symlink', path: 'bin/ls', target: 'busybox' },
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'proc', mode: 0o555 },
    { type: 'dir', path: 'sys', mode: 0o555 },
    { type: 'dir', path: 'dev', mode: 0o755 },
  ]);
}

/** The second layer: just /hello.txt. */
export function helloLayer(hello: string = DEFAULT_HELLO): Layer {
  return makeLayer([{ type: 'file', path: 'hello.txt', data: hello, mode: 0o644 }]);
}

/**
 * A tiny runnable linux image: layer 1 is busybox (+ symlinks), layer 2 is
 * /hello.txt; Cmd runs `cat /hello.txt`. Architecture amd64 unless given.
 */
export function buildBusyboxImage(opts: BusyboxImageOptions = {}): BuiltImage {
  const layers = [busyboxLayer(opts.busyboxPath), helloLayer(opts.hello ?? DEFAULT_HELLO)];
  return makeImage(layers, {
    platform: opts.platform ?? { architecture: 'amd64', os: 'linux' },
    ...(opts.cmd ? { cmd: opts.cmd } : {}),
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.format ? { format: opts.format } : {}),
  });
}

/**
 * A multi-arch index: linux/amd64 and linux/arm64 (variant v8) images that
 * share the same layers and differ in their configs (architecture).
 */
export function buildMultiArchIndex(opts: Omit<BusyboxImageOptions, 'platform'> = {}): BuiltIndex {
  const layers = [busyboxLayer(opts.busyboxPath), helloLayer(opts.hello ?? DEFAULT_HELLO)];
  const common = {
    ...(opts.cmd ? { cmd: opts.cmd } : {}),
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.format ? { format: opts.format } : {}),
  };
  const amd64 = makeImage(layers, { ...common, platform: { architecture: 'amd64', os: 'linux' } });
  const arm64 = makeImage(layers, { ...common, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
  return makeIndex([amd64, arm64]);
}

/** Every distinct blob (layers, configs, child manifests; not the top manifest/index) of an image or index. */
export function allBlobs(target: BuiltImage | BuiltIndex): Blob[] {
  const seen = new Map<string, Blob>();
  const images = target.kind === 'image' ? [target] : target.images;
  for (const img of images) {
    for (const l of img.layers) seen.set(l.digest, l);
    seen.set(img.config.digest, img.config);
  }
  return [...seen.values()];
}

// ------------------------------------------------------- OCI image layout

export interface LayoutRef {
  tag: string;
  target: BuiltImage | BuiltIndex;
}

/** The files of an OCI image layout holding `refs` (path → bytes), index.json naming each by tag. */
export function layoutFiles(refs: LayoutRef[]): Map<string, Buffer> {
  const blobs = new Map<string, Buffer>();
  const top: Descriptor[] = [];
  for (const { tag, target } of refs) {
    const images = target.kind === 'image' ? [target] : target.images;
    for (const img of images) {
      for (const l of img.layers) blobs.set(l.digest, l.data);
      blobs.set(img.config.digest, img.config.data);
      blobs.set(img.manifest.digest, img.manifest.data);
    }
    const head = target.kind === 'image' ? target.manifest : target.index;
    blobs.set(head.digest, head.data);
    const platform = target.kind === 'image' ? { platform: target.platform } : {};
    top.push(descriptor(head, { ...platform, annotations: { [REF_NAME_ANNOTATION]: tag } }));
  }
  const files = new Map<string, Buffer>();
  files.set('oci-layout', jsonBytes({ imageLayoutVersion: '1.0.0' }));
  files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: top }, null, 2)));
  for (const [digest, data] of blobs) files.set(`blobs/sha256/${digest.slice('sha256:'.length)}`, data);
  return files;
}

/**
 * Writes an OCI image layout (oci-layout, index.json, blobs/sha256/*) holding
 * every ref; index.json names each top-level manifest/index with
 * org.opencontainers.image.ref.name = tag, so `skopeo copy oci:DIR:TAG` works.
 */
export async function writeOciLayout(dir: string, refs: LayoutRef[]): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [path, data] of layoutFiles(refs)) await writeFile(join(dir, path), data);
}

/** The same layout as one tar archive (what `ctr images import` and `skopeo ... oci-archive:` read). */
export function ociArchive(refs: LayoutRef[]): Buffer {
  const entries: TarEntry[] = [
    { type: 'dir', path: 'blobs' },
    { type: 'dir', path: 'blobs/sha256' },
  ];
  for (const [path, data] of layoutFiles(refs)) entries.push({ type: 'file', path, data });
  return tar(entries);
}

/** Reads back an OCI image layout: its index.json and a getter for blobs (checking their digest). */
export function readOciLayout(dir: string): {
  index: { manifests: Descriptor[] };
  blob(digest: string): Buffer;
  json<T = any>(digest: string): T;
  resolve(tag: string): Descriptor;
} {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const getBlob = (digest: string): Buffer => {
    const [alg, hex] = digest.split(':');
    if (alg !== 'sha256' || !hex) throw new Error(`unsupported digest ${digest}`);
    const data = readFileSync(join(dir, 'blobs', alg, hex));
    const actual = sha256(data);
    if (actual !== digest) throw new Error(`blob ${digest} in ${dir} has digest ${actual}`);
    return data;
  };
  return {
    index,
    blob: getBlob,
    json: (digest) => JSON.parse(getBlob(digest).toString('utf8')),
    resolve(tag) {
      const d = index.manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag);
      if (!d) throw new Error(`tag ${tag} not in ${dir}/index.json: ${JSON.stringify(index.manifests)}`);
      return d;
    },
  };
}

// ------------------------------------------------------- push over HTTP

/** Thrown for unexpected registry answers; carries the request and response for failure reports. */
export class RegistryHttpError extends Error {
  constructor(
    message: string,
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${message}: ${method} ${url} -> ${status} ${body.slice(0, 500)}`);
  }
}

async function expectStatus(res: Response, method: string, url: string, ok: number[], what: string): Promise<void> {
  if (!ok.includes(res.status)) {
    const body = await res.text().catch(() => '');
    throw new RegistryHttpError(what, method, url, res.status, body);
  }
}

/** Monolithic blob upload: POST /v2/<repo>/blobs/uploads/ then PUT <location>?digest=. Skips blobs that HEAD finds. */
export async function pushBlob(baseUrl: string, repo: string, b: Blob): Promise<void> {
  const headUrl = `${baseUrl}/v2/${repo}/blobs/${b.digest}`;
  const head = await fetch(headUrl, { method: 'HEAD' });
  if (head.status === 200) return;
  const postUrl = `${baseUrl}/v2/${repo}/blobs/uploads/`;
  const post = await fetch(postUrl, { method: 'POST' });
  await expectStatus(post, 'POST', postUrl, [202], 'start upload');
  await post.arrayBuffer();
  const location = post.headers.get('location');
  if (!location) throw new RegistryHttpError('upload without Location', 'POST', postUrl, post.status, '');
  const put = new URL(location, baseUrl);
  put.searchParams.set('digest', b.digest);
  const res = await fetch(put, {
    method: 'PUT',
    // No explicit content-length: fetch sets it, and undici 7 (once loaded, it becomes fetch's dispatcher) rejects a hand-set one.
    headers: { 'content-type': 'application/octet-stream' },
    body: Uint8Array.from(b.data),
  });
  await expectStatus(res, 'PUT', put.toString(), [201], 'finish upload');
  await res.arrayBuffer();
}

/** PUT a manifest/index by tag or digest; returns the Docker-Content-Digest the server answered. */
export async function pushManifest(baseUrl: string, repo: string, reference: string, m: Blob): Promise<string | null> {
  const url = `${baseUrl}/v2/${repo}/manifests/${reference}`;
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': m.mediaType }, body: Uint8Array.from(m.data) });
  await expectStatus(res, 'PUT', url, [201], 'put manifest');
  await res.arrayBuffer();
  return res.headers.get('docker-content-digest');
}

/** Pushes an image (blobs, then its manifest under `tag`) or an index (children by digest, then the index). */
export async function pushImage(baseUrl: string, repo: string, tag: string, target: BuiltImage | BuiltIndex): Promise<void> {
  for (const b of allBlobs(target)) await pushBlob(baseUrl, repo, b);
  if (target.kind === 'image') {
    await pushManifest(baseUrl, repo, tag, target.manifest);
  } else {
    for (const img of target.images) await pushManifest(baseUrl, repo, img.manifest.digest, img.manifest);
    await pushManifest(baseUrl, repo, tag, target.index);
  }
}

/** GET a manifest with a broad Accept; returns bytes, content type and the computed digest. */
export async function fetchManifest(
  baseUrl: string,
  repo: string,
  reference: string,
): Promise<{ data: Buffer; mediaType: string; digest: string; headerDigest: string | null; json: any }> {
  const url = `${baseUrl}/v2/${repo}/manifests/${reference}`;
  const res = await fetch(url, {
    headers: { accept: [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ') },
  });
  await expectStatus(res, 'GET', url, [200], 'get manifest');
  const data = Buffer.from(await res.arrayBuffer());
  return {
    data,
    mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(),
    digest: sha256(data),
    headerDigest: res.headers.get('docker-content-digest'),
    json: JSON.parse(data.toString('utf8')),
  };
}

/** GET a blob and check that its bytes hash to the digest. */
export async function fetchBlob(baseUrl: string, repo: string, digest: string): Promise<Buffer> {
  const url = `${baseUrl}/v2/${repo}/blobs/${digest}`;
  const res = await fetch(url);
  await expectStatus(res, 'GET', url, [200], 'get blob');
  const data = Buffer.from(await res.arrayBuffer());
  const actual = sha256(data);
  if (actual !== digest) throw new RegistryHttpError(`blob digest mismatch (got ${actual})`, 'GET', url, res.status, '');
  return data;
}
