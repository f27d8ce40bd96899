import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type MemberAnnouncement,
  type MemberEvent,
  MemberRegistry,
  type MemberStatus,
} from '../../src/discovery/index.ts';
import { isPixelfleetError } from '../../src/errors/index.ts';

function clock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function announcement(id: string, overrides: Partial<MemberAnnouncement> = {}): MemberAnnouncement {
  return {
    id,
    role: 'api',
    url: `http://127.0.0.1:9000/${id}`,
    ready: true,
    startedAt: 1,
    intervalMs: 100,
    ...overrides,
  };
}

test('discovery - a member is suspect after 3 missed intervals and dropped after 6', () => {
  const time = clock();
  const registry = new MemberRegistry({ now: time.now });
  const events: Array<[string, MemberStatus]> = [];
  registry.subscribe((event) => events.push([event.type, event.member.status]));
  registry.heartbeat(announcement('a'));
  time.advance(300);
  assert.equal(registry.member('a')?.status, 'alive');
  time.advance(1);
  assert.equal(registry.member('a')?.status, 'suspect');
  assert.equal(registry.member('a')?.lastSeenAgoMs, 301);
  time.advance(299);
  assert.deepEqual(
    registry.members().map((m) => m.status),
    ['suspect'],
  );
  time.advance(1);
  registry.sweep();
  assert.deepEqual(registry.members(), []);
  assert.deepEqual(events, [
    ['joined', 'alive'],
    ['changed', 'suspect'],
    ['died', 'dead'],
  ]);
});

test('discovery - a heartbeat revives a suspect; routing changes are events, load is not', () => {
  const time = clock();
  const registry = new MemberRegistry({ now: time.now });
  const events: MemberEvent[] = [];
  registry.subscribe((event) => events.push(event));
  registry.heartbeat(announcement('a', { load: { inflight: 1 } }));
  registry.heartbeat(announcement('a', { load: { inflight: 7 } }));
  time.advance(350);
  registry.sweep();
  registry.heartbeat(announcement('a'));
  registry.heartbeat(announcement('a', { ready: false }));
  registry.heartbeat(announcement('a', { ready: false, startedAt: 2 }));
  assert.deepEqual(
    events.map((e) => [e.type, e.member.status, e.member.ready]),
    [
      ['joined', 'alive', true],
      ['changed', 'suspect', true],
      ['changed', 'alive', true],
      ['changed', 'alive', false],
      ['changed', 'alive', false],
    ],
  );
  assert.equal(registry.member('a')?.weight, 1, 'weight defaults to 1');
});

test('discovery - leave, role filter, intervals per member, unsubscribe', () => {
  const time = clock();
  const registry = new MemberRegistry({ now: time.now });
  const events: string[] = [];
  const unsubscribe = registry.subscribe((event) => events.push(`${event.type}:${event.member.id}`));
  registry.heartbeat(announcement('api-1'));
  registry.heartbeat(announcement('worker-1', { role: 'worker', url: undefined, intervalMs: 1000 }));
  assert.deepEqual(
    registry.members({ role: 'worker' }).map((m) => m.id),
    ['worker-1'],
  );
  time.advance(500);
  // Each member is judged by its own interval.
  assert.deepEqual(
    registry.members({ status: 'alive' }).map((m) => m.id),
    ['worker-1'],
  );
  assert.equal(registry.leave('worker-1'), true);
  assert.equal(registry.leave('worker-1'), false);
  unsubscribe();
  registry.heartbeat(announcement('api-2'));
  assert.deepEqual(events, ['joined:api-1', 'joined:worker-1', 'changed:api-1', 'left:worker-1']);
});

test('discovery - malformed announcements are rejected whole', () => {
  const registry = new MemberRegistry({ now: () => 0 });
  const bad: unknown[] = [
    null,
    [],
    { ...announcement('a'), id: '' },
    { ...announcement('a'), id: 'has space' },
    { ...announcement('a'), role: 'gateway' },
    { ...announcement('a'), ready: 'yes' },
    { ...announcement('a'), url: 'ftp://x' },
    { ...announcement('a'), url: 'not a url' },
    { ...announcement('a'), weight: -1 },
    { ...announcement('a'), load: { inflight: -1 } },
    { ...announcement('a'), intervalMs: 0 },
    { ...announcement('a'), startedAt: 'now' },
  ];
  for (const body of bad) {
    assert.throws(
      () => registry.heartbeat(body as MemberAnnouncement),
      (error) => isPixelfleetError(error, 'PF_ERR_BAD_REQUEST'),
      JSON.stringify(body),
    );
  }
  assert.deepEqual(registry.members(), []);
  assert.throws(() => new MemberRegistry({ suspectAfterIntervals: 3, deadAfterIntervals: 3 }), RangeError);
});

test('discovery - status is a function of time since the last heartbeat, events follow it (property)', () => {
  const step = fc.oneof(
    fc.record({
      kind: fc.constant('beat' as const),
      id: fc.constantFrom('a', 'b', 'c'),
      ready: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 400 }) }),
    fc.record({ kind: fc.constant('leave' as const), id: fc.constantFrom('a', 'b', 'c') }),
    fc.constant({ kind: 'sweep' as const }),
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 120 }), (steps) => {
      const time = clock(0);
      const registry = new MemberRegistry({ now: time.now });
      const lastBeat = new Map<string, number>();
      const lifecycle = new Map<string, string[]>();
      registry.subscribe((event) => {
        const log = lifecycle.get(event.member.id) ?? [];
        log.push(event.type);
        lifecycle.set(event.member.id, log);
      });
      for (const s of steps) {
        if (s.kind === 'advance') time.advance(s.ms);
        else if (s.kind === 'sweep') registry.sweep();
        else if (s.kind === 'leave') {
          const expiredBefore = (lastBeat.get(s.id) ?? Number.NEGATIVE_INFINITY) < time.now() - 600;
          assert.equal(registry.leave(s.id), lastBeat.has(s.id) && !expiredBefore);
          lastBeat.delete(s.id);
        } else {
          registry.heartbeat(announcement(s.id, { ready: s.ready }));
          lastBeat.set(s.id, time.now());
        }
        // The model: 100 ms interval, suspect beyond 300 ms, gone beyond 600 ms.
        const expected = [...lastBeat]
          .filter(([, at]) => time.now() - at <= 600)
          .map(([id, at]) => `${id}:${time.now() - at > 300 ? 'suspect' : 'alive'}`)
          .sort();
        assert.deepEqual(
          registry.members().map((m) => `${m.id}:${m.status}`),
          expected,
        );
        for (const [id, at] of lastBeat) if (time.now() - at > 600) lastBeat.delete(id);
      }
      // Every member's event log is a life: joined, then changes, then at most one end, repeated.
      for (const [id, log] of lifecycle) {
        let present = false;
        for (const type of log) {
          if (type === 'joined') assert.equal(present, false, `${id}: ${log.join(',')}`);
          else assert.equal(present, true, `${id}: ${log.join(',')}`);
          present = type === 'joined' || type === 'changed';
        }
      }
    }),
    { seed: 20_250_505, numRuns: 300 },
  );
});
