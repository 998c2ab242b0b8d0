import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isValidRepository, isValidTag, parseManifestReference, assertRepository } from '../../../src/oci/reference.js';
import { isDigest, parseDigest, digestOf } from '../../../src/oci/digest.js';
import { RegistryError } from '../../../src/oci/errors.js';
import { matchRoute } from '../../../src/registry/routes.js';

const component = fc.stringMatching(/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/).filter((s) => s.length > 0 && s.length < 30);
const repository = fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/')).filter((s) => s.length <= 255);

test('every spec-shaped repository name is accepted and routes back to itself', () => {
  fc.assert(
    fc.property(repository, fc.constantFrom('tags/list', 'manifests/latest', `blobs/${digestOf('x')}`, 'blobs/uploads/', 'blobs/uploads/abc-123'), (name, tail) => {
      assert.ok(isValidRepository(name));
      assert.equal(matchRoute(`/v2/${name}/${tail}`)?.repo, name);
    }),
  );
});

test('names with upper case, dot segments, empty components or encoded slashes are refused with NAME_INVALID', () => {
  const bad = fc.oneof(
    repository.map((n) => n.toUpperCase()).filter((n) => /[A-Z]/.test(n)),
    repository.map((n) => `${n}/../${n}`),
    repository.map((n) => `${n}/./x`),
    repository.map((n) => `${n}//x`),
    repository.map((n) => `${n}%2Fx`),
    repository.map((n) => `/${n}`),
    repository.map((n) => `${n}/`),
    fc.string().filter((s) => !/^[a-z0-9._/-]*$/.test(s) && !s.includes('/tags') && !s.includes('/blobs') && !s.includes('/manifests')),
  );
  fc.assert(
    fc.property(bad, (name) => {
      assert.equal(isValidRepository(name), false, name);
      assert.throws(() => assertRepository(name), (e) => e instanceof RegistryError && e.code === 'NAME_INVALID');
      assert.throws(() => matchRoute(`/v2/${name}/tags/list`), (e) => e instanceof RegistryError && e.code === 'NAME_INVALID');
    }),
  );
});

test('names longer than 255 characters are refused', () => {
  assert.equal(isValidRepository('a'.repeat(256)), false);
  assert.equal(isValidRepository('a'.repeat(255)), true);
});

test('tags: spec grammar, 128 characters at most', () => {
  fc.assert(fc.property(fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/), (t) => assert.ok(isValidTag(t))));
  assert.equal(isValidTag('a'.repeat(129)), false);
  assert.equal(isValidTag('.hidden'), false);
  assert.equal(isValidTag('-x'), false);
  assert.deepEqual(parseManifestReference('v1.0'), { kind: 'tag', tag: 'v1.0' });
});

test('digests: computed ones parse; mangled ones are DIGEST_INVALID, never another error', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom('sha256', 'sha512') as fc.Arbitrary<'sha256' | 'sha512'>, (data, alg) => {
      const d = digestOf(data, alg);
      assert.ok(isDigest(d));
      assert.equal(parseDigest(d).algorithm, alg);
      assert.deepEqual(parseManifestReference(d), { kind: 'digest', digest: d });
      assert.equal(isDigest(d.toUpperCase()), false);
      assert.equal(isDigest(d.slice(0, -1)), false);
    }),
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        parseDigest(s);
      } catch (e) {
        assert.ok(e instanceof RegistryError && e.code === 'DIGEST_INVALID');
      }
    }),
  );
  assert.throws(() => parseDigest(`md5:${'a'.repeat(32)}`), (e) => e instanceof RegistryError && e.code === 'DIGEST_INVALID');
});
