/**
 * The benchmark's raw limit: one bare process converting corpus JPEGs with the same pipeline
 * function the workers use, with no HTTP, queue or IPC. The parent runs one per core.
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { convertImage, parseResizeOptions } from '../src/worker/index.ts';
import type { ConversionLimits } from '../src/worker/types.ts';

sharp.concurrency(1);
sharp.cache(false);

const [durationMs, warmupMs, ...files] = process.argv.slice(2);
const inputs = files.map((file) => readFileSync(file));
const limits: ConversionLimits = {
  allowedFormats: new Set(['jpeg']),
  maxInputPixels: 50_000_000,
  maxOutputDimension: 8192,
  maxFrames: 1,
};
const options = parseResizeOptions({ width: '320', format: 'jpeg', quality: '80' }, { limits });

let index = 0;
const warmupEnd = performance.now() + Number(warmupMs);
while (performance.now() < warmupEnd) await convertImage(inputs[index++ % inputs.length]!, options, limits);
const cpuStart = process.cpuUsage();
const start = performance.now();
const end = start + Number(durationMs);
let conversions = 0;
while (performance.now() < end) {
  await convertImage(inputs[index++ % inputs.length]!, options, limits);
  conversions++;
}
const elapsed = performance.now() - start;
const cpu = process.cpuUsage(cpuStart);
process.send!({ conversions, elapsedMs: elapsed, cpuMs: (cpu.user + cpu.system) / 1000 });
