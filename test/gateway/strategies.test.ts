import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type Candidate,
  ConsistentHash,
  createStrategy,
  HashRing,
  LeastConnections,
  LeastTime,
  RoundRobin,
  ringPosition,
  SmoothWeightedRoundRobin,
} from '../../src/gateway/index.ts';

function candidates(weights: number[]): Candidate[] {
  return weights.map((weight, index) => ({ id: `u${index}`, weight }));
}

/** Deterministic random source for property runs (mulberry32). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('gateway strategies - round robin picks each candidate exactly k times in k·n picks', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 20 }), (n, k) => {
      const strategy = new RoundRobin();
      const set = candidates(Array.from({ length: n }, () => 1));
      const counts = new Map<string, number>();
      for (let i = 0; i < n * k; i += 1) {
        const chosen = strategy.pick(set)!;
        counts.set(chosen.id, (counts.get(chosen.id) ?? 0) + 1);
      }
      for (const candidate of set) assert.equal(counts.get(candidate.id), k);
    }),
  );
});

test('gateway strategies - smooth weighted round robin interleaves weights {5,1,1}', () => {
  const strategy = new SmoothWeightedRoundRobin();
  const set = [
    { id: 'a', weight: 5 },
    { id: 'b', weight: 1 },
    { id: 'c', weight: 1 },
  ];
  const sequence = Array.from({ length: 14 }, () => strategy.pick(set)!.id).join(' ');
  assert.equal(sequence, 'a a b a c a a a a b a c a a');
});

test('gateway strategies - smooth weighted round robin gives each its weight per cycle, never a long burst', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 8 }), (weights) => {
      const strategy = new SmoothWeightedRoundRobin();
      const set = candidates(weights);
      const total = weights.reduce((sum, weight) => sum + weight, 0);
      const counts = new Map<string, number>();
      const picks: string[] = [];
      for (let i = 0; i < total; i += 1) {
        const chosen = strategy.pick(set)!;
        picks.push(chosen.id);
        counts.set(chosen.id, (counts.get(chosen.id) ?? 0) + 1);
      }
      set.forEach((candidate) => {
        assert.equal(counts.get(candidate.id) ?? 0, candidate.weight);
      });
      // Interleaving: a candidate's longest run is at most ceil(w / (total - w)) + 2 (checked
      // exhaustively for up to 4 candidates of weight 1..10, and on 200,000 random sets of up to
      // 8: e.g. weights 10,2,2 give the run a a a a once per cycle).
      set.forEach((candidate) => {
        let run = 0;
        let longest = 0;
        for (const id of picks) {
          run = id === candidate.id ? run + 1 : 0;
          longest = Math.max(longest, run);
        }
        const others = total - candidate.weight;
        const bound = others === 0 ? total : Math.ceil(candidate.weight / others) + 2;
        assert.ok(longest <= bound, `run ${longest} > ${bound} for weights ${weights}`);
      });
    }),
  );
});

test('gateway strategies - least connections picks a least loaded candidate and spreads ties', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 8 }),
      fc.integer(),
      (loads, seed) => {
        const strategy = new LeastConnections({ random: seededRandom(seed) });
        const set = candidates(loads.map(() => 1));
        loads.forEach((load, index) => {
          for (let i = 0; i < load; i += 1) strategy.requestStarted(`u${index}`);
        });
        const chosen = strategy.pick(set)!;
        assert.equal(strategy.inflight(chosen.id), Math.min(...loads));
      },
    ),
  );
  // Ties: 3 idle candidates, 3000 picks without starting requests land roughly evenly.
  const strategy = new LeastConnections({ random: seededRandom(7) });
  const set = candidates([1, 1, 1]);
  const counts = new Map<string, number>();
  for (let i = 0; i < 3000; i += 1) {
    const id = strategy.pick(set)!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const candidate of set) assert.ok((counts.get(candidate.id) ?? 0) > 800, JSON.stringify([...counts]));
});

test('gateway strategies - least connections always picks a minimum under random completions', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 2, max: 6 }), (seed, n) => {
      const random = seededRandom(seed);
      const strategy = new LeastConnections({ random });
      const set = candidates(Array.from({ length: n }, () => 1));
      const open: string[] = [];
      for (let step = 0; step < 300; step += 1) {
        if (open.length > 0 && random() < 0.4) {
          const [id] = open.splice(Math.floor(random() * open.length), 1);
          strategy.requestFinished(id!);
        } else {
          const loads = set.map((candidate) => strategy.inflight(candidate.id));
          const id = strategy.pick(set)!.id;
          // Whatever completions happened before, each pick goes to a currently least loaded one.
          assert.equal(strategy.inflight(id), Math.min(...loads));
          strategy.requestStarted(id);
          open.push(id);
        }
      }
    }),
  );
});

test('gateway strategies - least time prefers the faster upstream and never picks the worse of its two samples', () => {
  const strategy = new LeastTime({ random: seededRandom(3) });
  const set = candidates([1, 1, 1]);
  for (let i = 0; i < 10; i += 1) {
    strategy.requestStarted('u0');
    strategy.requestFinished('u0', 5, false);
    strategy.requestStarted('u1');
    strategy.requestFinished('u1', 50, false);
    strategy.requestStarted('u2');
    strategy.requestFinished('u2', 100, false);
  }
  const counts = new Map<string, number>();
  for (let i = 0; i < 3000; i += 1) {
    const id = strategy.pick(set)!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  // With two distinct random choices the slowest is never chosen and the fastest wins 2/3.
  assert.equal(counts.get('u2') ?? 0, 0);
  assert.ok((counts.get('u0') ?? 0) > 1800, JSON.stringify([...counts]));
  // A failure is observed as at least the current EWMA: it never makes an upstream look faster.
  const before = strategy.latencyEwmaMs('u2')!;
  strategy.requestStarted('u2');
  strategy.requestFinished('u2', 1, true);
  assert.ok(strategy.latencyEwmaMs('u2')! >= before);
});

test('gateway strategies - least time weighs in-flight requests (EWMA × (in flight + 1))', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 1, max: 20 }), (seed, busy) => {
      const strategy = new LeastTime({ random: seededRandom(seed) });
      const set = candidates([1, 1]);
      strategy.requestStarted('u0');
      strategy.requestFinished('u0', 10, false);
      strategy.requestStarted('u1');
      strategy.requestFinished('u1', 10, false);
      for (let i = 0; i < busy; i += 1) strategy.requestStarted('u0');
      // Two candidates: both are always sampled, so the idle one must win.
      assert.equal(strategy.pick(set)!.id, 'u1');
    }),
  );
});

test('gateway strategies - least time tries an upstream without a sample before a known one it ties with', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer({ min: 1, max: 1000 }), (seed, slowMs) => {
      const strategy = new LeastTime({ random: seededRandom(seed) });
      const set = candidates([1, 1, 1]);
      // Only u2 has a sample: the others cost the mean of the known ones, which is u2's own.
      strategy.requestStarted('u2');
      strategy.requestFinished('u2', slowMs, false);
      for (let i = 0; i < 20; i += 1) assert.notEqual(strategy.pick(set)!.id, 'u2');
    }),
  );
});

test('gateway strategies - every strategy picks only from the candidates and returns undefined on empty', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(
        'round-robin',
        'weighted-round-robin',
        'least-connections',
        'least-time',
        'consistent-hash',
      ) as fc.Arbitrary<'round-robin'>,
      fc.uniqueArray(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.option(fc.string(), { nil: undefined }), { minLength: 1, maxLength: 30 }),
      fc.integer(),
      (name, ids, keys, seed) => {
        const strategy = createStrategy(name, { random: seededRandom(seed) });
        const set = ids.map((id) => ({ id: `n${id}`, weight: (id % 3) + 1 }));
        const allowed = new Set(set.map((candidate) => candidate.id));
        for (const key of keys) {
          const chosen = strategy.pick(set, { affinityKey: key });
          assert.ok(chosen && allowed.has(chosen.id));
          strategy.requestStarted(chosen.id);
          strategy.requestFinished(chosen.id, 3, false);
        }
        assert.equal(strategy.pick([], { affinityKey: 'k' }), undefined);
      },
    ),
  );
});

test('gateway strategies - consistent hash is sticky per key and spreads keys by weight', () => {
  const strategy = new ConsistentHash();
  const set = candidates([1, 1, 2]);
  const counts = new Map<string, number>();
  for (let i = 0; i < 10_000; i += 1) {
    const key = `key-${i}`;
    const first = strategy.pick(set, { affinityKey: key })!.id;
    assert.equal(strategy.pick(set, { affinityKey: key })!.id, first);
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  // Shares 1/4, 1/4, 1/2 within a generous tolerance (160 virtual nodes per weight unit).
  assert.ok(Math.abs(counts.get('u0')! / 10_000 - 0.25) < 0.06, JSON.stringify([...counts]));
  assert.ok(Math.abs(counts.get('u2')! / 10_000 - 0.5) < 0.08, JSON.stringify([...counts]));
});

function owners(ring: HashRing, keys: string[]): string[] {
  return keys.map((key) => ring.owner(ringPosition(key))!);
}

test('gateway strategies - consistent hash: adding or removing one of n servers moves only about 1/n of 10,000 keys', () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `api-key-${i}`);
  for (const n of [3, 5, 10]) {
    const members = candidates(Array.from({ length: n }, () => 1));
    const before = owners(new HashRing(members), keys);

    // Add one server: only keys that now belong to the newcomer move.
    const grown = [...members, { id: 'newcomer', weight: 1 }];
    const afterAdd = owners(new HashRing(grown), keys);
    let moved = 0;
    afterAdd.forEach((owner, index) => {
      if (owner !== before[index]) {
        moved += 1;
        assert.equal(owner, 'newcomer');
      }
    });
    assert.ok(moved / keys.length < 1.5 / (n + 1), `add to ${n}: moved ${moved}`);
    assert.ok(moved / keys.length > 0.5 / (n + 1), `add to ${n}: moved only ${moved}`);

    // Remove one server: only the removed server's keys move.
    const removed = members[1]!.id;
    const afterRemove = owners(new HashRing(members.filter((member) => member.id !== removed)), keys);
    moved = 0;
    afterRemove.forEach((owner, index) => {
      if (owner !== before[index]) {
        moved += 1;
        assert.equal(before[index], removed);
      }
    });
    assert.ok(moved / keys.length < 1.5 / n, `remove from ${n}: moved ${moved}`);
  }
});

test('gateway strategies - consistent hash falls back to the next distinct eligible node clockwise', () => {
  const strategy = new ConsistentHash();
  const members = candidates([1, 1, 1, 1]);
  const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
  const home = keys.map((key) => strategy.pick(members, { members, affinityKey: key })!.id);
  const eligible = members.filter((member) => member.id !== 'u2');
  const ring = new HashRing(members);
  const spread = new Set<string>();
  keys.forEach((key, index) => {
    const chosen = strategy.pick(eligible, { members, affinityKey: key })!.id;
    if (home[index] !== 'u2') assert.equal(chosen, home[index]);
    else {
      assert.equal(
        chosen,
        ring.owner(ringPosition(key), (id) => id !== 'u2'),
      );
      spread.add(chosen);
    }
  });
  // The down node's keys spread over its successors rather than piling onto one.
  assert.ok(spread.size >= 2);
});
