/** Small inputs built at test time (never copies of the corpus). */
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** A few hundred bytes that claim to be a width × height 1-bit PNG: a decompression bomb. */
export function pngBomb(width = 30_000, height = 30_000): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // greyscale
  const rows = deflateSync(Buffer.alloc(64 * 1024));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A JPEG whose EXIF says "rotate 90° clockwise" (orientation 6): stored 200×100, shown 100×200. */
export async function rotatedJpeg(): Promise<Buffer> {
  return sharp({ create: { width: 200, height: 100, channels: 3, background: '#c04020' } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

/** A 3-frame animated GIF, 64×48. */
export async function animatedGif(frames = 3): Promise<Buffer> {
  const colours = ['#ff0000', '#00ff00', '#0000ff', '#ffff00', '#00ffff'];
  const stack = await Promise.all(
    Array.from({ length: frames }, (_, i) =>
      sharp({ create: { width: 64, height: 48, channels: 3, background: colours[i % colours.length]! } })
        .raw()
        .toBuffer(),
    ),
  );
  return sharp(Buffer.concat(stack), { raw: { width: 64, height: 48 * frames, channels: 3, pageHeight: 48 } })
    .gif({ loop: 0, delay: Array(frames).fill(100) })
    .toBuffer();
}

/** A transparent PNG (RGBA) for background/flatten checks. */
export async function transparentPng(): Promise<Buffer> {
  return sharp({ create: { width: 80, height: 40, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
    .png()
    .toBuffer();
}
