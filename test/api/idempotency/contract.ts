/**
 * The IdempotencyStore contract: every engine (SQLite today, Redis later) must pass these. A
 * file per engine calls `runIdempotencyContract` with a function that opens a store over the
 * backing storage named by `location`: the same location must reach the same data (that is how
 * persistence across a reopen is tested), a new location must start empty. Time is passed in as
 * `nowMs`, never read from a clock, so expiry is tested without waiting.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  type IdempotencyStore,
  idempotentReplayedHeader,
  type StoredResponse,
  withIdempotency,
} from '../../../src/api/idempotency/index.ts';
import { isPixelfleetError } from '../../../src/errors/index.ts';

export interface ContractStoreOptions {
  retentionMs: number;
  defaultLeaseMs: number;
  maxStoredBytes: number;
}

export type OpenIdempotencyStore = (
  location: string,
  options: ContractStoreOptions,
) => Promise<IdempotencyStore>;

export interface ContractCapabilities {
  /** The engine enforces `maxStoredBytes` by evicting the oldest completed entries. Default true. */
  sizeBudget?: boolean;
}

const t0 = 1_750_000_000_000;
const hour = 60 * 60 * 1000;
const defaultOptions: ContractStoreOptions = {
  retentionMs: 24 * hour,
  defaultLeaseMs: 30_000,
  maxStoredBytes: 64 * 1024 * 1024,
};

/** Every byte value, so a store that mangles binary (text encoding, NUL handling) fails. */
function binaryBody(length: number, seed = 0): Buffer {
  const body = Buffer.alloc(length);
  for (let index = 0; index < length; index++) body[index] = (index * 31 + seed) & 0xff;
  return body;
}

function response(status: number, body: Buffer, extra: Record<string, string> = {}): StoredResponse {
  return {
    status,
    headers: { 'content-type': 'image/webp', etag: '"abc"', 'x-pixelfleet-dimensions': '64x48', ...extra },
    body,
  };
}

function started(result: Awaited<ReturnType<IdempotencyStore['begin']>>): string {
  assert.equal(result.kind, 'started', `expected started, got ${result.kind}`);
  return (result as { token: string }).token;
}

export function runIdempotencyContract(
  name: string,
  open: OpenIdempotencyStore,
  capabilities: ContractCapabilities = {},
): void {
  describe(`idempotency store contract (${name})`, () => {
    const opened: IdempotencyStore[] = [];
    let counter = 0;
    const newLocation = () => `contract-${++counter}`;
    const openAt = async (location: string, options: Partial<ContractStoreOptions> = {}) => {
      const store = await open(location, { ...defaultOptions, ...options });
      opened.push(store);
      return store;
    };
    const fresh = (options: Partial<ContractStoreOptions> = {}) => openAt(newLocation(), options);

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    test('idempotency - stores the first response and replays it byte for byte', async () => {
      const store = await fresh();
      const token = started(await store.begin('acct_1', 'key-1', 'fp-a', t0));
      const first = response(201, binaryBody(70_000), { 'server-timing': 'queue;dur=1.0' });
      assert.equal(await store.complete('acct_1', 'key-1', token, first), true);
      for (const later of [t0 + 1, t0 + hour]) {
        const replay = await store.begin('acct_1', 'key-1', 'fp-a', later);
        assert.equal(replay.kind, 'replay');
        if (replay.kind !== 'replay') return;
        assert.equal(replay.response.status, 201);
        assert.deepEqual(replay.response.headers, first.headers);
        assert.ok(Buffer.isBuffer(replay.response.body));
        assert.ok(replay.response.body.equals(first.body));
      }
    });

    test('idempotency - withIdempotency runs once and marks replays with Idempotent-Replayed', async () => {
      const store = await fresh();
      let runs = 0;
      const request = {
        scope: 'acct_1',
        key: 'key-w',
        fingerprint: 'fp-a',
        deadlineMs: t0 + 10_000,
        clock: () => t0,
      };
      const run = async () => {
        runs++;
        return { ...response(200, binaryBody(1_000, runs)), store: true };
      };
      const first = await withIdempotency(store, request, run);
      const second = await withIdempotency(store, { ...request, clock: () => t0 + 5 }, run);
      assert.equal(runs, 1);
      assert.equal(first.replayed, false);
      assert.equal(first.response.headers[idempotentReplayedHeader], undefined);
      assert.equal(second.replayed, true);
      assert.equal(second.response.headers[idempotentReplayedHeader], 'true');
      assert.equal(second.response.status, 200);
      assert.ok(second.response.body.equals(first.response.body));
      assert.equal(second.response.headers.etag, first.response.headers.etag);
    });

    test('idempotency - a request without a key simply runs every time', async () => {
      const store = await fresh();
      let runs = 0;
      const request = { scope: 'acct_1', key: undefined, fingerprint: 'fp-a', deadlineMs: t0 + 10_000 };
      const run = async () => ({ ...response(200, binaryBody(10, ++runs)), store: true });
      await withIdempotency(store, request, run);
      const second = await withIdempotency(store, request, run);
      assert.equal(runs, 2);
      assert.equal(second.replayed, false);
    });

    test('idempotency - keys are scoped to the account', async () => {
      const store = await fresh();
      const token = started(await store.begin('acct_1', 'shared', 'fp-a', t0));
      await store.complete('acct_1', 'shared', token, response(200, binaryBody(10)));
      started(await store.begin('acct_2', 'shared', 'fp-b', t0));
      assert.equal((await store.begin('acct_1', 'shared', 'fp-a', t0)).kind, 'replay');
    });

    test('idempotency - the same key with different parameters is a mismatch (422)', async () => {
      const store = await fresh();
      const token = started(await store.begin('acct_1', 'key-m', 'fp-a', t0));
      // Different parameters while the first is still running: still the wrong request.
      assert.equal((await store.begin('acct_1', 'key-m', 'fp-b', t0 + 1)).kind, 'mismatch');
      await store.complete('acct_1', 'key-m', token, response(200, binaryBody(10)));
      assert.equal((await store.begin('acct_1', 'key-m', 'fp-b', t0 + 2)).kind, 'mismatch');
      await assert.rejects(
        withIdempotency(
          store,
          {
            scope: 'acct_1',
            key: 'key-m',
            fingerprint: 'fp-b',
            deadlineMs: t0 + 10_000,
            clock: () => t0 + 3,
          },
          async () => assert.fail('must not run'),
        ),
        (error) => isPixelfleetError(error, 'PF_ERR_IDEMPOTENCY_KEY_REUSED') && error.status === 422,
      );
      // The stored response is untouched by the mismatching attempts.
      assert.equal((await store.begin('acct_1', 'key-m', 'fp-a', t0 + 4)).kind, 'replay');
    });

    test('idempotency - a duplicate while the first is running is in progress (409)', async () => {
      const store = await fresh();
      const request = {
        scope: 'acct_1',
        key: 'key-p',
        fingerprint: 'fp-a',
        deadlineMs: t0 + 10_000,
        clock: () => t0,
      };
      let release!: () => void;
      const running = new Promise<void>((resolve) => {
        release = resolve;
      });
      let entered!: () => void;
      const hasEntered = new Promise<void>((resolve) => {
        entered = resolve;
      });
      const first = withIdempotency(store, request, async () => {
        entered();
        await running;
        return { ...response(200, binaryBody(100)), store: true };
      });
      await hasEntered;
      assert.equal((await store.begin('acct_1', 'key-p', 'fp-a', t0 + 1)).kind, 'in-progress');
      await assert.rejects(
        withIdempotency(store, request, async () => assert.fail('must not run')),
        (error) =>
          isPixelfleetError(error, 'PF_ERR_IDEMPOTENCY_IN_PROGRESS') &&
          error.status === 409 &&
          error.extensions.retryAfterSeconds === 1,
      );
      release();
      assert.equal((await first).replayed, false);
      assert.equal(
        (await withIdempotency(store, request, async () => assert.fail('must not run'))).replayed,
        true,
      );
    });

    test('idempotency - validation failures, 5xx outcomes and thrown errors leave the key free', async () => {
      const store = await fresh();
      const base = { scope: 'acct_1', key: 'key-v', deadlineMs: t0 + 10_000, clock: () => t0 };
      const rejected = await withIdempotency(store, { ...base, fingerprint: 'fp-bad' }, async () => ({
        ...response(400, Buffer.from('{"code":"PF_ERR_INVALID_OPTION"}')),
        store: false,
      }));
      assert.equal(rejected.response.status, 400);
      // The client fixes the request and retries with the same key: it runs, not 422.
      const unavailable = await withIdempotency(store, { ...base, fingerprint: 'fp-good' }, async () => ({
        ...response(503, Buffer.from('{"code":"PF_ERR_OVERLOADED"}')),
        store: true, // even when asked, a 5xx is never stored: it is transient
      }));
      assert.equal(unavailable.response.status, 503);
      await assert.rejects(
        withIdempotency(store, { ...base, fingerprint: 'fp-good' }, async () => {
          throw new Error('queue unreachable');
        }),
        /queue unreachable/,
      );
      let runs = 0;
      const succeeded = await withIdempotency(store, { ...base, fingerprint: 'fp-good' }, async () => {
        runs++;
        return { ...response(200, binaryBody(50)), store: true };
      });
      assert.equal(runs, 1);
      assert.equal(succeeded.replayed, false);
      assert.equal((await store.begin('acct_1', 'key-v', 'fp-good', t0 + 1)).kind, 'replay');
    });

    test('idempotency - abandon frees the key and a completed key cannot be abandoned', async () => {
      const store = await fresh();
      const token = started(await store.begin('acct_1', 'key-a', 'fp-a', t0));
      assert.equal(await store.abandon('acct_1', 'key-a', 'not-the-token'), false);
      assert.equal((await store.begin('acct_1', 'key-a', 'fp-a', t0)).kind, 'in-progress');
      assert.equal(await store.abandon('acct_1', 'key-a', token), true);
      assert.equal(await store.complete('acct_1', 'key-a', token, response(200, binaryBody(5))), false);
      const second = started(await store.begin('acct_1', 'key-a', 'fp-b', t0));
      assert.equal(await store.complete('acct_1', 'key-a', second, response(200, binaryBody(5))), true);
      assert.equal(await store.abandon('acct_1', 'key-a', second), false);
      assert.equal((await store.begin('acct_1', 'key-a', 'fp-b', t0)).kind, 'replay');
    });

    test('idempotency - a stored response expires after the retention, counted from begin', async () => {
      const retentionMs = 2 * hour;
      const store = await fresh({ retentionMs });
      const token = started(await store.begin('acct_1', 'key-t', 'fp-a', t0));
      // Completed late: the retention still runs from the first request.
      await store.complete('acct_1', 'key-t', token, response(200, binaryBody(10)));
      assert.equal((await store.begin('acct_1', 'key-t', 'fp-a', t0 + retentionMs - 1)).kind, 'replay');
      // Past the window the key is new again, with any parameters.
      started(await store.begin('acct_1', 'key-t', 'fp-other', t0 + retentionMs));

      const other = started(await store.begin('acct_1', 'key-s', 'fp-a', t0));
      await store.complete('acct_1', 'key-s', other, response(200, binaryBody(10)));
      const live = started(await store.begin('acct_1', 'key-live', 'fp-a', t0 + hour));
      await store.complete('acct_1', 'key-live', live, response(200, binaryBody(10)));
      const swept = await store.sweep(t0 + retentionMs);
      assert.ok(swept.expired >= 1, `swept ${JSON.stringify(swept)}`);
      assert.equal((await store.begin('acct_1', 'key-live', 'fp-a', t0 + retentionMs)).kind, 'replay');
      started(await store.begin('acct_1', 'key-s', 'fp-a', t0 + retentionMs));
    });

    test('idempotency - an in-progress marker expires with its lease', async () => {
      const store = await fresh({ defaultLeaseMs: 5_000 });
      started(await store.begin('acct_1', 'key-l', 'fp-a', t0, 1_000));
      assert.equal((await store.begin('acct_1', 'key-l', 'fp-a', t0 + 999)).kind, 'in-progress');
      started(await store.begin('acct_1', 'key-l', 'fp-a', t0 + 1_000));
      // The default lease applies when begin is not given one.
      started(await store.begin('acct_1', 'key-d', 'fp-a', t0));
      assert.equal((await store.begin('acct_1', 'key-d', 'fp-a', t0 + 4_999)).kind, 'in-progress');
      // key-d's marker ended at t0+5000; key-l's second one (default lease) runs to t0+6000.
      const swept = await store.sweep(t0 + 5_000);
      assert.equal(swept.expired, 1);
      started(await store.begin('acct_1', 'key-d', 'fp-a', t0 + 5_000));
      assert.equal((await store.begin('acct_1', 'key-l', 'fp-a', t0 + 5_999)).kind, 'in-progress');
    });

    test('idempotency - a stale token never clobbers a newer holder', async () => {
      const store = await fresh();
      const stale = started(await store.begin('acct_1', 'key-f', 'fp-a', t0, 1_000));
      const current = started(await store.begin('acct_1', 'key-f', 'fp-a', t0 + 2_000, 10_000));
      assert.notEqual(stale, current);
      assert.equal(
        await store.complete('acct_1', 'key-f', stale, response(200, Buffer.from('stale'))),
        false,
      );
      assert.equal(await store.abandon('acct_1', 'key-f', stale), false);
      assert.equal((await store.begin('acct_1', 'key-f', 'fp-a', t0 + 2_001)).kind, 'in-progress');
      assert.equal(
        await store.complete('acct_1', 'key-f', current, response(200, Buffer.from('current'))),
        true,
      );
      assert.equal(
        await store.complete('acct_1', 'key-f', stale, response(200, Buffer.from('stale'))),
        false,
      );
      const replay = await store.begin('acct_1', 'key-f', 'fp-a', t0 + 2_002);
      assert.equal(replay.kind, 'replay');
      if (replay.kind === 'replay') assert.equal(replay.response.body.toString(), 'current');

      // A stale holder whose marker was swept cannot store either.
      const swept = started(await store.begin('acct_1', 'key-g', 'fp-a', t0, 1_000));
      await store.sweep(t0 + 1_000);
      assert.equal(await store.complete('acct_1', 'key-g', swept, response(200, Buffer.from('late'))), false);
      started(await store.begin('acct_1', 'key-g', 'fp-a', t0 + 1_000));
    });

    test('idempotency - stored responses and markers survive a reopen', async () => {
      const location = newLocation();
      const first = await openAt(location);
      const token = started(await first.begin('acct_1', 'key-r', 'fp-a', t0));
      const body = binaryBody(300_000, 7);
      await first.complete('acct_1', 'key-r', token, response(200, body));
      started(await first.begin('acct_1', 'key-running', 'fp-a', t0, 60_000));
      await first.close();

      const second = await openAt(location);
      const replay = await second.begin('acct_1', 'key-r', 'fp-a', t0 + hour);
      assert.equal(replay.kind, 'replay');
      if (replay.kind === 'replay') assert.ok(replay.response.body.equals(body));
      assert.equal((await second.begin('acct_1', 'key-r', 'fp-b', t0 + hour)).kind, 'mismatch');
      // A request that was running when the server stopped blocks its key until the lease ends.
      assert.equal((await second.begin('acct_1', 'key-running', 'fp-a', t0 + 59_999)).kind, 'in-progress');
      started(await second.begin('acct_1', 'key-running', 'fp-a', t0 + 60_000));
    });

    test('idempotency - many concurrent begins for one key start exactly one', async () => {
      const location = newLocation();
      const stores = [await openAt(location), await openAt(location), await openAt(location)];
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, index) =>
          stores[index % stores.length]!.begin('acct_1', 'hot', 'fp-a', t0),
        ),
      );
      const kinds = results.map((result) => result.kind);
      assert.equal(kinds.filter((kind) => kind === 'started').length, 1);
      assert.equal(kinds.filter((kind) => kind === 'in-progress').length, 59);

      let runs = 0;
      const outcomes = await Promise.allSettled(
        Array.from({ length: 30 }, (_, index) =>
          withIdempotency(
            stores[index % stores.length]!,
            { scope: 'acct_1', key: 'hot-2', fingerprint: 'fp-a', deadlineMs: t0 + 10_000, clock: () => t0 },
            async () => {
              runs++;
              await new Promise((resolve) => setTimeout(resolve, 20));
              return { ...response(200, binaryBody(10)), store: true };
            },
          ),
        ),
      );
      assert.equal(runs, 1);
      assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 1);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          assert.ok(
            isPixelfleetError(outcome.reason, 'PF_ERR_IDEMPOTENCY_IN_PROGRESS'),
            String(outcome.reason),
          );
        }
      }
    });

    test('idempotency - invalid keys are rejected with PF_ERR_INVALID_IDEMPOTENCY_KEY', async () => {
      const store = await fresh();
      for (const key of ['', 'x'.repeat(256), 'tab\there', 'caf\u00e9', 'line\nbreak']) {
        await assert.rejects(store.begin('acct_1', key, 'fp-a', t0), (error) =>
          isPixelfleetError(error, 'PF_ERR_INVALID_IDEMPOTENCY_KEY'),
        );
        await assert.rejects(
          withIdempotency(store, { scope: 'acct_1', key, fingerprint: 'fp-a', deadlineMs: t0 }, async () =>
            assert.fail('must not run'),
          ),
          (error) => isPixelfleetError(error, 'PF_ERR_INVALID_IDEMPOTENCY_KEY') && error.status === 400,
        );
      }
      started(await store.begin('acct_1', 'x'.repeat(255), 'fp-a', t0));
      started(await store.begin('acct_1', ' ~!"#$%&\'()*+,-./0123456789:;<=>?@[\\]^_`{|}', 'fp-a', t0));
    });

    if (capabilities.sizeBudget !== false) {
      test('idempotency - storing beyond the byte budget evicts the oldest completed entries', async () => {
        const entryBytes = 16 * 1024;
        const maxStoredBytes = 64 * 1024;
        const store = await fresh({ maxStoredBytes });
        for (let index = 0; index < 10; index++) {
          const token = started(await store.begin('acct_1', `key-${index}`, 'fp-a', t0 + index));
          assert.equal(
            await store.complete(
              'acct_1',
              `key-${index}`,
              token,
              response(200, binaryBody(entryBytes, index)),
            ),
            true,
          );
        }
        const now = t0 + 100;
        const kinds = [];
        for (let index = 0; index < 10; index++) {
          kinds.push((await store.begin('acct_1', `key-${index}`, 'fp-a', now)).kind);
        }
        const kept = kinds.filter((kind) => kind === 'replay').length;
        assert.ok(kept >= 2 && kept <= 4, `kept ${kept} of 10 under a budget of 4 bodies: ${kinds}`);
        // Eviction takes the oldest: what survives is a suffix of the insertion order.
        assert.deepEqual(kinds.slice(10 - kept), Array(kept).fill('replay'));
        assert.deepEqual(kinds.slice(0, 10 - kept), Array(10 - kept).fill('started'));
        // A response that could never fit is not stored, and its key is free again.
        const token = started(await store.begin('acct_1', 'huge', 'fp-a', now));
        assert.equal(
          await store.complete('acct_1', 'huge', token, response(200, binaryBody(maxStoredBytes))),
          false,
        );
        started(await store.begin('acct_1', 'huge', 'fp-a', now));
        assert.equal((await store.begin('acct_1', 'key-9', 'fp-a', now)).kind, 'replay');
      });
    }

    test('idempotency - close is idempotent', async () => {
      const store = await fresh();
      await store.close();
      await store.close();
    });
  });
}
