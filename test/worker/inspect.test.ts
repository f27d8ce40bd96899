import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { type ErrorCode, isPixelfleetError } from '../../src/errors/index.ts';
import {
  convertImage,
  defaultAllowedInputFormats,
  type InputFormat,
  inspectInput,
  parseResizeOptions,
  sniffFormat,
} from '../../src/worker/index.ts';
import { animatedGif, corpusFile, corpusJpegNames, rotatedExifJpeg, testLimits } from './fixtures.ts';

const limits = { allowedFormats: defaultAllowedInputFormats, maxInputPixels: 50_000_000 };
const everything = new Set<InputFormat>(['jpeg', 'png', 'webp', 'gif', 'avif', 'heif', 'tiff', 'svg']);

function rejectsWith(
  bytes: Uint8Array,
  code: ErrorCode,
  allowed: ReadonlySet<InputFormat> = limits.allowedFormats,
) {
  assert.throws(
    () => inspectInput(bytes, { ...limits, allowedFormats: allowed }),
    (error: unknown) => {
      assert.ok(isPixelfleetError(error, code), `expected ${code}, got ${String(error)}`);
      return true;
    },
  );
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A real, valid decompression bomb: a 1-bit greyscale PNG of side × side zero pixels. The rows
 * deflate to a few hundred bytes per megapixel, so ~900 MP fits in about 100 KB.
 */
function pngBomb(side: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // greyscale
  const rowBytes = 1 + Math.ceil(side / 8); // filter byte + packed bits
  const pixels = deflateSync(Buffer.alloc(rowBytes * side), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', pixels),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(8 + body.length);
  return Buffer.concat([size, Buffer.from(type, 'latin1'), body]);
}

/** The boxes of a HEIC file that carry its size (no image data: headers are all inspection reads). */
function heicHeader(width: number, height: number): Buffer {
  const extents = Buffer.alloc(12);
  extents.writeUInt32BE(width, 4);
  extents.writeUInt32BE(height, 8);
  const thumbnail = Buffer.alloc(12);
  thumbnail.writeUInt32BE(64, 4);
  thumbnail.writeUInt32BE(48, 8);
  return Buffer.concat([
    box('ftyp', Buffer.from('heic\0\0\0\0mif1heic', 'latin1')),
    box(
      'meta',
      Buffer.alloc(4),
      box('hdlr', Buffer.alloc(24)),
      box('iprp', box('ipco', box('ispe', thumbnail), box('ispe', extents))),
    ),
  ]);
}

describe('worker inspect', () => {
  test('worker inspect - every corpus image: format sniffed, header dimensions match the decoder', async () => {
    const files = [
      ...corpusJpegNames().map((name) => `jpeg/${name}`),
      'other/mate-Storm-q80.webp',
      'other/skimage-coffee-q80.webp',
      'other/skimage-astronaut.png',
      'other/skimage-chelsea.png',
    ];
    for (const file of files) {
      const bytes = corpusFile(file);
      const inspection = inspectInput(bytes, limits);
      const metadata = await sharp(bytes).metadata();
      assert.equal(inspection.format, metadata.format, file);
      assert.equal(inspection.width, metadata.width, file);
      assert.equal(inspection.height, metadata.height, file);
      assert.equal(inspection.mimeType, `image/${metadata.format}`, file);
    }
  });

  test('worker inspect - GIF, AVIF, lossless WebP, TIFF, HEIF and SVG are sniffed with their sizes', async () => {
    const gif = inspectInput(await animatedGif(3, 64, 48), limits);
    assert.deepEqual([gif.format, gif.width, gif.height, gif.mimeType], ['gif', 64, 48, 'image/gif']);

    const photo = corpusFile('jpeg/skimage-coffee-q90.jpg');
    const avif = inspectInput(
      await sharp(photo).resize({ width: 96 }).avif({ effort: 0 }).toBuffer(),
      limits,
    );
    assert.deepEqual([avif.format, avif.width, avif.height, avif.mimeType], ['avif', 96, 64, 'image/avif']);

    const lossless = inspectInput(
      await sharp(photo).resize({ width: 90 }).webp({ lossless: true }).toBuffer(),
      limits,
    );
    assert.deepEqual([lossless.format, lossless.width, lossless.height], ['webp', 90, 60]);
    const extended = await sharp(photo).resize({ width: 90 }).webp().keepMetadata().toBuffer();
    assert.deepEqual([inspectInput(extended, limits).width, inspectInput(extended, limits).height], [90, 60]);

    const tiff = await sharp(photo).resize({ width: 30 }).tiff().toBuffer();
    assert.equal(sniffFormat(tiff), 'tiff');
    rejectsWith(tiff, 'PF_ERR_UNSUPPORTED_FORMAT');
    assert.deepEqual(inspectInput(tiff, { ...limits, allowedFormats: everything }).width, 30);

    const heic = heicHeader(4032, 3024);
    assert.equal(sniffFormat(heic), 'heif');
    rejectsWith(heic, 'PF_ERR_UNSUPPORTED_FORMAT');
    const heif = inspectInput(heic, { ...limits, allowedFormats: everything });
    assert.deepEqual([heif.width, heif.height, heif.mimeType], [4032, 3024, 'image/heif']);

    const svg = Buffer.from(
      '\ufeff  <?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="20"></svg>',
    );
    assert.equal(sniffFormat(svg), 'svg');
    rejectsWith(svg, 'PF_ERR_UNSUPPORTED_FORMAT');
    const allowedSvg = inspectInput(svg, { ...limits, allowedFormats: everything });
    assert.deepEqual([allowedSvg.width, allowedSvg.height, allowedSvg.mimeType], [10, 20, 'image/svg+xml']);
  });

  test('worker inspect - unknown bytes are unsupported, whatever they claim', () => {
    rejectsWith(Buffer.alloc(0), 'PF_ERR_UNSUPPORTED_FORMAT');
    rejectsWith(Buffer.from('hello, I am definitely a JPEG'), 'PF_ERR_UNSUPPORTED_FORMAT');
    rejectsWith(Buffer.from('<html><body>not an image</body></html>'), 'PF_ERR_UNSUPPORTED_FORMAT');
    rejectsWith(Buffer.from('BM\x36\x00\x00\x00', 'latin1'), 'PF_ERR_UNSUPPORTED_FORMAT');
    rejectsWith(box('ftyp', Buffer.from('mp42\0\0\0\0isom', 'latin1')), 'PF_ERR_UNSUPPORTED_FORMAT');
  });

  test('worker inspect - a decompression bomb is refused from its header, before decoding', () => {
    const bomb = pngBomb(30_000);
    assert.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`);
    const startedAt = performance.now();
    assert.throws(
      () => inspectInput(bomb, limits),
      (error: unknown) => {
        assert.ok(isPixelfleetError(error, 'PF_ERR_TOO_MANY_PIXELS'), String(error));
        assert.equal(error.status, 422);
        assert.deepEqual(error.extensions, { width: 30_000, height: 30_000, limit: 50_000_000 });
        return true;
      },
    );
    // Decoding 900 MP would take seconds and gigabytes; the header check takes microseconds.
    assert.ok(performance.now() - startedAt < 50);
  });

  test('worker inspect - the pipeline refuses the bomb too', async () => {
    const bomb = pngBomb(10_000);
    const options = parseResizeOptions({ width: '100' }, { limits: testLimits });
    await assert.rejects(
      convertImage(bomb, options, { ...testLimits, maxInputPixels: 1_000_000 }),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_TOO_MANY_PIXELS'),
    );
  });

  test('worker inspect - unreadable headers are corrupt images', async () => {
    const jpeg = corpusFile('jpeg/mate-Dune-q85.jpg');
    rejectsWith(jpeg.subarray(0, 100), 'PF_ERR_CORRUPT_IMAGE');
    rejectsWith(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6]), 'PF_ERR_CORRUPT_IMAGE');
    rejectsWith(corpusFile('other/skimage-chelsea.png').subarray(0, 20), 'PF_ERR_CORRUPT_IMAGE');
    rejectsWith(Buffer.from('RIFF\0\0\0\0WEBPXXXX0123456789abcdef', 'latin1'), 'PF_ERR_CORRUPT_IMAGE');
    rejectsWith(Buffer.from('GIF89a\x00\x00', 'latin1'), 'PF_ERR_CORRUPT_IMAGE');
    rejectsWith(box('ftyp', Buffer.from('avif\0\0\0\0mif1avif', 'latin1')), 'PF_ERR_CORRUPT_IMAGE');
  });

  test('worker inspect - reads the EXIF orientation of a JPEG', async () => {
    const inspection = inspectInput(await rotatedExifJpeg(), limits);
    assert.deepEqual([inspection.width, inspection.height, inspection.orientation], [200, 100, 6]);
    assert.equal(inspectInput(corpusFile('jpeg/mate-Aqua.jpg'), limits).orientation, undefined);
  });

  test('worker inspect - is cheap enough for the event loop', (context) => {
    const largest = corpusFile('jpeg/mate-TwoWings.jpg');
    const rounds = 2000;
    const startedAt = performance.now();
    for (let round = 0; round < rounds; round++) inspectInput(largest, limits);
    const microsEach = ((performance.now() - startedAt) * 1000) / rounds;
    context.diagnostic(`inspectInput on an 881 KB JPEG: ${microsEach.toFixed(1)} µs each`);
    assert.ok(microsEach < 1000, `${microsEach} µs`);
  });
});
