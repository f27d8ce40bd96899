import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  adminTokenMatches,
  type ChangeEvent,
  ensureAdminToken,
  InProcessChangeBus,
  readAdminToken,
} from '../../src/identity/index.ts';

describe('change bus', () => {
  const revoked: ChangeEvent = { type: 'key.revoked', at: 1, keyId: 'k', accountId: 'a', reason: null };

  test('change bus - delivers every event to every subscriber until it unsubscribes', () => {
    const bus = new InProcessChangeBus();
    const first: string[] = [];
    const second: string[] = [];
    const stopFirst = bus.subscribe((event) => first.push(event.type));
    bus.subscribe((event) => second.push(event.type));
    bus.publish(revoked);
    stopFirst();
    bus.publish({ type: 'tier.changed', at: 2, tier: 'pro' });
    assert.deepEqual(first, ['key.revoked']);
    assert.deepEqual(second, ['key.revoked', 'tier.changed']);
    assert.equal(bus.subscriberCount, 1);
  });

  test('change bus - a throwing subscriber neither stops the others nor the publisher', () => {
    const failures: string[] = [];
    const bus = new InProcessChangeBus({
      onListenerError: (error, event) => failures.push(`${event.type}: ${error}`),
    });
    const seen: string[] = [];
    bus.subscribe(() => {
      throw new Error('boom');
    });
    bus.subscribe((event) => seen.push(event.type));
    bus.publish(revoked);
    assert.deepEqual(seen, ['key.revoked']);
    assert.deepEqual(failures, ['key.revoked: Error: boom']);
  });
});

describe('admin token', () => {
  test('admin token - generated once with mode 0600, then read back; the environment wins', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pixelfleet-admin-token-'));
    try {
      assert.throws(
        () => readAdminToken(dataDir, {}),
        (error) => isPixelfleetError(error, 'PF_ERR_CONFIG'),
      );
      const generated = ensureAdminToken(dataDir, {});
      assert.equal(generated.source, 'generated');
      assert.ok(generated.token.length >= 32);
      assert.deepEqual(ensureAdminToken(dataDir, {}), { ...generated, source: 'file' });
      assert.equal(readAdminToken(dataDir, {}).token, generated.token);
      const fromEnv = readAdminToken(dataDir, { PIXELFLEET_ADMIN_TOKEN: 'an-operator-chosen-token' });
      assert.deepEqual([fromEnv.source, fromEnv.token], ['env', 'an-operator-chosen-token']);
      assert.throws(
        () => ensureAdminToken(dataDir, { PIXELFLEET_ADMIN_TOKEN: 'short' }),
        (error) => isPixelfleetError(error, 'PF_ERR_CONFIG') && /at least 16/.test(error.message),
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('admin token - comparison is exact', () => {
    assert.equal(adminTokenMatches('abcdefghijklmnopq', 'abcdefghijklmnopq'), true);
    assert.equal(adminTokenMatches('abcdefghijklmnop', 'abcdefghijklmnopq'), false);
    assert.equal(adminTokenMatches('', 'abcdefghijklmnopq'), false);
  });
});
