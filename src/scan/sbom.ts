// The SBOM: a CycloneDX 1.5 JSON document of the image's packages, pushed into the registry as an
// OCI artifact whose `subject` is the scanned manifest, so it is listed by the referrers API and
// travels with the image (replication copies referrers). The document is deterministic for the
// same packages (no timestamp, serial number derived from the content), so a rescan re-pushes the
// same digest instead of piling up referrers.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { RegistryService } from '../registry/service.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { OCI_EMPTY, OCI_MANIFEST } from '../oci/media-types.js';
import type { Package } from './scanner.js';

export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';
const EMPTY_CONFIG = Buffer.from('{}');

export interface SbomSubject {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
}

export function cycloneDx(subject: SbomSubject, packages: Package[]): Record<string, unknown> {
  const components = packages.map((p) => ({
    type: 'library',
    'bom-ref': `${p.purl ?? `${p.ecosystem}/${p.name}@${p.version}`}#${p.source}`,
    name: p.name,
    version: p.version,
    ...(p.purl ? { purl: p.purl } : {}),
    properties: [
      { name: 'shoal:package:ecosystem', value: p.osvEcosystem ?? p.ecosystem },
      { name: 'shoal:package:source', value: p.source },
      ...(p.sourceName ? [{ name: 'shoal:package:source-name', value: p.sourceName }] : []),
    ],
  }));
  const body = {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    version: 1,
    metadata: {
      tools: { components: [{ type: 'application', name: 'shoal', version: '0.1.0' }] },
      component: { type: 'container', 'bom-ref': subject.digest, name: subject.repository, version: subject.digest },
    },
    components,
  };
  const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  // A UUID-shaped serial number derived from the content (RFC 4122 variant/version bits set).
  const serial = `urn:uuid:${hash.slice(0, 8)}-${hash.slice(8, 12)}-5${hash.slice(13, 16)}-a${hash.slice(17, 20)}-${hash.slice(20, 32)}`;
  return { bomFormat: body.bomFormat, specVersion: body.specVersion, serialNumber: serial, version: 1, metadata: body.metadata, components };
}

async function putBlob(registry: RegistryService, repo: string, data: Buffer): Promise<Digest> {
  const digest = digestOf(data);
  if (await registry.statBlob(repo, digest)) return digest;
  const id = await registry.startUpload(repo);
  await registry.finishUpload(repo, id, digest, { body: Readable.from([data]), opts: { expectedLength: data.length } });
  return digest;
}

/** Pushes the SBOM artifact (blob + manifest by digest) and returns the artifact manifest's digest. */
export async function pushSbom(registry: RegistryService, subject: SbomSubject, packages: Package[]): Promise<Digest> {
  const doc = Buffer.from(JSON.stringify(cycloneDx(subject, packages)));
  const repo = subject.repository;
  const docDigest = await putBlob(registry, repo, doc);
  const configDigest = await putBlob(registry, repo, EMPTY_CONFIG);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: CYCLONEDX_MEDIA_TYPE,
      config: { mediaType: OCI_EMPTY, digest: configDigest, size: EMPTY_CONFIG.length },
      layers: [{ mediaType: CYCLONEDX_MEDIA_TYPE, digest: docDigest, size: doc.length, annotations: { 'org.opencontainers.image.title': 'sbom.cdx.json' } }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { 'dev.shoal.sbom.generator': 'shoal scan' },
    }),
  );
  const digest = digestOf(manifest);
  await registry.putManifest(repo, digest, manifest, OCI_MANIFEST, []);
  return digest;
}
