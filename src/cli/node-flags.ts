/**
 * The V8 flags a Pixelfleet service process (`pixelfleet start`, a cluster member) is started
 * with. They cannot be set from inside a running process, and NODE_OPTIONS refuses them, so every
 * launcher passes them: the npm scripts and the `pixelfleet` bin (its shebang), the cluster
 * supervisor, and the tests' and benchmarks' harnesses, which import this list. A test checks
 * that the npm scripts and the bin agree with it.
 *
 * `--initial-old-space-size=128`: a floor under V8's old-generation limit. A service's heap is
 * small (about 30 MB live), so V8 sets the limit only a little above it, closer than the young
 * generation's size, and then starts a full incremental mark-compact every ~130 ms under load —
 * a quarter of the main thread at saturation, for garbage that is mostly image buffers living
 * outside the heap. With the floor, mark-compacts come only from external-memory pressure
 * (about one a second at saturation) and the process's CPU per request halves
 * (docs/architecture.md, "Performance"). The cost is up to 128 MB of heap before the first
 * full collection.
 *
 * `--external-memory-accounted-in-global-limit`: external memory (Buffers: request bodies,
 * inputs, outputs) counts against V8's global heap limit instead of a fixed 64 MB allowance of
 * its own. Each process passes a few hundred kilobytes of buffers per request, so with that
 * allowance every ~65 MB of traffic started a mark-compact: in a cluster member at 90
 * conversions/s, one every 1.5 s in the gateway and every 2–5 s in api servers and workers, each
 * marking the whole ~35 MB heap for buffers that had long been dropped. Accounted in the global
 * limit, the gateway collects every ~6 s and the others rarely. The embedded main process's CPU
 * per conversion fell from 2.1 to 1.5 ms, the cluster members' by about 0.3 ms in all
 * (`npm run bench:cluster`, docs/architecture.md). The cost is memory: a process that moves many
 * buffers holds about 100–150 MB more before collecting.
 */
export const serviceNodeFlags: readonly string[] = [
  '--initial-old-space-size=128',
  '--external-memory-accounted-in-global-limit',
];
