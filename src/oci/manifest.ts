// Manifest and index validation: what a PUT must satisfy before anything is stored,
// and the descriptors a stored manifest refers to (for blob checks, GC and referrers).
import { RegistryError } from './errors.js';
import { isDigest, type Digest } from './digest.js';
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  IMAGE_MANIFEST_TYPES,
  INDEX_TYPES,
  MANIFEST_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
  baseMediaType,
  isNonDistributable,
} from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Record<string, unknown>;
}

export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** Blobs that must exist in the repository: config and distributable layers. */
  blobs: Descriptor[];
  /** Child manifests of an index. */
  manifests: Descriptor[];
  subject?: Descriptor;
  /** artifactType, falling back to config.mediaType for image manifests (spec: referrers listing). */
  artifactType?: string;
  annotations?: Record<string, string>;
}

const MAX_DESCRIPTORS = 10_000;

/**
 * Validates a manifest body against its declared Content-Type.
 * Throws MANIFEST_INVALID with a message naming the offending field.
 */
export function parseManifest(body: Uint8Array, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw new RegistryError('MANIFEST_INVALID', `manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');

  const declared = baseMediaType(contentType);
  const inBody = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && typeof doc.mediaType !== 'string') throw invalid('mediaType must be a string');
  let mediaType: string;
  if (declared && declared !== 'application/octet-stream' && declared !== 'application/json') {
    if (!MANIFEST_TYPES.has(declared)) {
      throw new RegistryError('MANIFEST_INVALID', `unsupported manifest media type "${declared}"; supported: ${[...MANIFEST_TYPES].join(', ')}`);
    }
    if (inBody !== undefined && inBody !== declared) {
      throw invalid(`mediaType "${inBody}" in the body does not match Content-Type "${declared}"`);
    }
    mediaType = declared;
  } else if (inBody !== undefined) {
    if (!MANIFEST_TYPES.has(inBody)) throw invalid(`unsupported manifest media type "${inBody}"`);
    mediaType = inBody;
  } else {
    mediaType = Array.isArray(doc.manifests) ? OCI_INDEX : OCI_MANIFEST;
  }
  if ((mediaType === DOCKER_MANIFEST || mediaType === DOCKER_MANIFEST_LIST) && inBody !== mediaType) {
    throw invalid(`Docker manifests must carry mediaType "${mediaType}" in the body`);
  }

  const subject = doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject');
  const annotations = doc.annotations === undefined ? undefined : stringMap(doc.annotations, 'annotations');
  const artifactType = optionalString(doc.artifactType, 'artifactType');

  if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
    if (doc.manifests !== undefined) throw invalid('an image manifest must not have "manifests"');
    const config = descriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
    if (doc.layers.length > MAX_DESCRIPTORS) throw invalid(`too many layers (max ${MAX_DESCRIPTORS})`);
    const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`));
    return {
      mediaType,
      kind: 'image',
      blobs: [config, ...layers.filter((l) => !isNonDistributable(l.mediaType))],
      manifests: [],
      subject,
      artifactType: artifactType ?? config.mediaType,
      annotations,
    };
  }
  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
    if (doc.layers !== undefined || doc.config !== undefined) throw invalid('an index must not have "config" or "layers"');
    if (doc.manifests.length > MAX_DESCRIPTORS) throw invalid(`too many manifests (max ${MAX_DESCRIPTORS})`);
    const manifests = doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
    return { mediaType, kind: 'index', blobs: [], manifests, subject, artifactType, annotations };
  }
  throw invalid(`unsupported manifest media type "${mediaType}"`);
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/.test(mediaType)) {
    throw invalid(`${where}.mediaType must be a media type such as "application/vnd.oci.image.layer.v1.tar+gzip"`);
  }
  if (typeof digest !== 'string' || !isDigest(digest)) throw invalid(`${where}.digest is not a valid sha256/sha512 digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  const d: Descriptor = { mediaType, digest: digest as Digest, size };
  const artifactType = optionalString(value.artifactType, `${where}.artifactType`);
  if (artifactType !== undefined) d.artifactType = artifactType;
  if (value.annotations !== undefined) d.annotations = stringMap(value.annotations, `${where}.annotations`);
  if (value.urls !== undefined) {
    if (!Array.isArray(value.urls) || !value.urls.every((u) => typeof u === 'string')) throw invalid(`${where}.urls must be an array of strings`);
    d.urls = value.urls as string[];
  }
  if (value.platform !== undefined) {
    if (!isObject(value.platform)) throw invalid(`${where}.platform must be an object`);
    d.platform = value.platform;
  }
  return d;
}

function stringMap(value: unknown, where: string): Record<string, string> {
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(`${where} must be an object of string values`);
  }
  return value as Record<string, string>;
}

function optionalString(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${where} must be a string`);
  return value;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `invalid manifest: ${message}`);
}
