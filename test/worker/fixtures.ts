/**
 * Test inputs for the worker tests: the shared photo corpus (read in place, never copied into
 * the repository) and small images built at test time with sharp.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ConversionLimits } from '../../src/worker/index.ts';

/** `shared/corpus` sits beside the repository root (the CI clone has shared/ next to it). */
export const corpusDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/corpus');

export function corpusFile(relativePath: string): Buffer {
  return readFileSync(join(corpusDir, relativePath));
}

export function corpusJpegNames(): string[] {
  return readdirSync(join(corpusDir, 'jpeg'))
    .filter((name) => name.endsWith('.jpg'))
    .sort();
}

export const testLimits: ConversionLimits = {
  maxInputPixels: 50_000_000,
  maxOutputDimension: 8192,
  maxFrames: 100,
};

/** A solid-colour animated GIF: frame i is grey level i × 40. */
export async function animatedGif(frames: number, width = 64, height = 48): Promise<Buffer> {
  const frameBytes = width * height * 3;
  const raw = Buffer.alloc(frameBytes * frames);
  for (let frame = 0; frame < frames; frame++)
    raw.fill((frame * 40) % 256, frame * frameBytes, (frame + 1) * frameBytes);
  return sharp(raw, { raw: { width, height: height * frames, channels: 3, pageHeight: height } })
    .gif({ delay: 100, loop: 0 })
    .toBuffer();
}

/** A 200×100 landscape JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6). */
export async function rotatedExifJpeg(): Promise<Buffer> {
  return sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

/** Decodes an output with sharp to check what it really is. */
export function metadataOf(bytes: Uint8Array) {
  return sharp(bytes).metadata();
}

/** RGB(A) of one pixel of an encoded image. */
export async function pixelAt(bytes: Uint8Array, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  const offset = (y * info.width + x) * info.channels;
  return [...data.subarray(offset, offset + info.channels)];
}
