// Reads one layer (streamed, never whole) into LayerFacts: its whiteouts and the parsed package
// databases/manifests it holds. Only the bodies of files the catalogers want are read.
import type { BlobStore } from '../../storage/blob-store.js';
import type { Digest } from '../../oci/digest.js';
import { readTar } from './tar-reader.js';
import { layerTarChunks, type LayerStreamCounters } from './layer-stream.js';
import { classifyPath, type FileFact, type FileKind, type LayerFacts } from '../catalog/facts.js';
import { parseApkInstalled, parseApkOwnedFiles, parseDpkgFileList, parseDpkgStatus, parseOsRelease } from '../catalog/os-packages.js';
import { parseNpmLock, parseNpmPackageJson, parsePythonMetadata } from '../catalog/lang-packages.js';

/** Package databases beyond this are not read (a dpkg status of a large image is a few MiB). */
export const MAX_CATALOG_FILE_BYTES = 64 << 20;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

export function parseFact(kind: FileKind, text: string): FileFact {
  switch (kind) {
    case 'os-release':
      return { kind: 'os-release', os: parseOsRelease(text) };
    case 'dpkg-status':
      return { kind: 'packages', packages: parseDpkgStatus(text) };
    case 'dpkg-file-list':
      return { kind: 'packages', packages: [], owns: parseDpkgFileList(text) };
    case 'apk-installed':
      return { kind: 'packages', packages: parseApkInstalled(text), owns: parseApkOwnedFiles(text) };
    case 'npm-lock':
      return { kind: 'packages', packages: parseNpmLock(text) };
    case 'npm-package':
      return { kind: 'packages', packages: parseNpmPackageJson(text) };
    case 'python-metadata':
      return { kind: 'packages', packages: parsePythonMetadata(text) };
  }
}

/** The facts of a tar stream (exported for tests that feed a tar without a blob store). */
export async function factsFromTar(tarChunks: AsyncIterable<Uint8Array>): Promise<LayerFacts> {
  const facts: LayerFacts = { files: {}, whiteouts: [], opaqueDirs: [], notes: [] };
  for await (const e of readTar(tarChunks)) {
    const slash = e.path.lastIndexOf('/');
    const dir = slash === -1 ? '' : e.path.slice(0, slash);
    const base = e.path.slice(slash + 1);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (base === OPAQUE_MARKER) facts.opaqueDirs.push(dir);
      else if (!base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) facts.whiteouts.push(dir ? `${dir}/${base.slice(4)}` : base.slice(4));
      continue;
    }
    const kind = classifyPath(e.path, e.type === 'file' ? 'file' : 'other');
    if (!kind) continue;
    if (e.type === 'hardlink') {
      const target = facts.files[e.linkname];
      if (target) facts.files[e.path] = target;
      continue;
    }
    if (e.type !== 'file') {
      // A symlink or directory here still hides a lower layer's file (os-release is often a symlink).
      facts.files[e.path] = { kind: 'unreadable', reason: `not a regular file (${e.type})` };
      continue;
    }
    if (e.size > MAX_CATALOG_FILE_BYTES) {
      facts.files[e.path] = { kind: 'unreadable', reason: `${e.size} bytes, more than the ${MAX_CATALOG_FILE_BYTES} the scanner reads` };
      facts.notes.push(`${e.path}: skipped, ${e.size} bytes`);
      continue;
    }
    const body = await e.read();
    try {
      facts.files[e.path] = parseFact(kind, body.toString('utf8'));
    } catch (err) {
      facts.files[e.path] = { kind: 'unreadable', reason: (err as Error).message };
      facts.notes.push(`${e.path}: not parsed (${(err as Error).message})`);
    }
  }
  return facts;
}

/** Streams the layer blob through gunzip and the tar reader. Throws UnsupportedCompressionError for zstd. */
export function extractLayerFacts(blobs: BlobStore, digest: Digest, counters: LayerStreamCounters): Promise<LayerFacts> {
  return factsFromTar(layerTarChunks(blobs, digest, counters));
}
