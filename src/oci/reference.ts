// Repository names, tags and references as the distribution spec defines them.
import { RegistryError } from './errors.js';
import { isDigest, type Digest } from './digest.js';

/** Spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)* */
const repositoryPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Docker and Distribution cap the whole name at 255 characters. */
export const MAX_REPOSITORY_LENGTH = 255;

export function isValidRepository(name: string): boolean {
  return name.length > 0 && name.length <= MAX_REPOSITORY_LENGTH && repositoryPattern.test(name);
}

export function assertRepository(name: string): string {
  if (!isValidRepository(name)) {
    throw new RegistryError(
      'NAME_INVALID',
      `invalid repository name "${name.slice(0, 100)}": use lowercase letters, digits and separators (. _ __ -), path components joined by "/", at most ${MAX_REPOSITORY_LENGTH} characters`,
    );
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return tagPattern.test(tag);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) {
    throw new RegistryError('MANIFEST_INVALID', `invalid tag "${tag.slice(0, 140)}": must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`);
  }
  return tag;
}

export type ManifestReference = { kind: 'digest'; digest: Digest } | { kind: 'tag'; tag: string };

/** A `<reference>` path element is a tag or a digest. */
export function parseManifestReference(ref: string): ManifestReference {
  if (ref.includes(':')) {
    if (!isDigest(ref)) throw new RegistryError('DIGEST_INVALID', `invalid digest reference "${ref.slice(0, 140)}"`);
    return { kind: 'digest', digest: ref as Digest };
  }
  if (!isValidTag(ref)) throw new RegistryError('MANIFEST_INVALID', `invalid tag "${ref.slice(0, 140)}"`, { status: 400 });
  return { kind: 'tag', tag: ref };
}
