import assert from 'node:assert/strict';
import { hash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { digestBody, fingerprintRequest } from '../../../src/api/idempotency/index.ts';

const body = Buffer.from('not really a jpeg');
const base = {
  method: 'POST',
  path: '/v1/resize',
  query: { w: '200', h: '100', fit: 'cover' },
  headers: { accept: 'image/webp' },
  bodyDigest: digestBody(body),
};

test('idempotency - the body digest is the hex sha256 of the bytes', () => {
  assert.equal(digestBody(body), hash('sha256', body, 'hex'));
  assert.match(fingerprintRequest(base), /^[0-9a-f]{64}$/);
});

test('idempotency - fingerprints ignore query order, method case and header-name case', () => {
  const reference = fingerprintRequest(base);
  assert.equal(fingerprintRequest({ ...base, method: 'post' }), reference);
  assert.equal(fingerprintRequest({ ...base, query: { fit: 'cover', h: '100', w: '200' } }), reference);
  assert.equal(
    fingerprintRequest({ ...base, query: new URLSearchParams('fit=cover&w=200&h=100') }),
    reference,
  );
  assert.equal(
    fingerprintRequest({
      ...base,
      query: [
        ['h', '100'],
        ['fit', 'cover'],
        ['w', '200'],
      ],
    }),
    reference,
  );
  assert.equal(
    fingerprintRequest({ ...base, headers: { Accept: 'image/webp', 'x-absent': undefined } }),
    reference,
  );
});

test('idempotency - fingerprints change with any parameter', () => {
  const reference = fingerprintRequest(base);
  const variants = [
    { ...base, method: 'PUT' },
    { ...base, path: '/v1/jobs' },
    { ...base, query: { ...base.query, w: '201' } },
    { ...base, query: { ...base.query, q: '80' } },
    { ...base, headers: { accept: 'image/avif' } },
    { ...base, headers: {} },
    { ...base, bodyDigest: digestBody(Buffer.from('another image')) },
    { ...base, bodyDigest: undefined },
  ];
  const fingerprints = variants.map((variant) => fingerprintRequest(variant));
  assert.equal(new Set([reference, ...fingerprints]).size, variants.length + 1);
});

test('idempotency - repeated query values keep their order; names and values never run together', () => {
  const twice = (first: string, second: string) =>
    fingerprintRequest({
      method: 'POST',
      path: '/v1/resize',
      query: new URLSearchParams(`a=${first}&a=${second}`),
    });
  assert.notEqual(twice('1', '2'), twice('2', '1'));
  assert.notEqual(
    fingerprintRequest({ method: 'POST', path: '/p', query: { a: 'b&c=d' } }),
    fingerprintRequest({ method: 'POST', path: '/p', query: { a: 'b', c: 'd' } }),
  );
});

test('idempotency - fingerprints are a function of the sorted query (property)', () => {
  const pair = fc.tuple(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }));
  const pairsAndPermutation = fc
    .uniqueArray(pair, { selector: ([name]) => name, maxLength: 8 })
    .chain((pairs) =>
      fc.tuple(
        fc.constant(pairs),
        fc.shuffledSubarray(pairs, { minLength: pairs.length, maxLength: pairs.length }),
      ),
    );
  const fingerprint = (query: [string, string][]) =>
    fingerprintRequest({ method: 'POST', path: '/p', query });
  fc.assert(
    fc.property(pairsAndPermutation, ([pairs, shuffled]) => {
      assert.equal(fingerprint(shuffled), fingerprint(pairs));
    }),
  );
});
