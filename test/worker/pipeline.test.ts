import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  type ConversionLimits,
  convertImage,
  parseResizeOptions,
  planOutputBounds,
  type ResizeQuery,
} from '../../src/worker/index.ts';
import {
  animatedGif,
  corpusFile,
  corpusJpegNames,
  metadataOf,
  pixelAt,
  rotatedExifJpeg,
  testLimits,
} from './fixtures.ts';

// A 2560×1600 landscape photo and a 600×400 one.
const landscape = corpusFile('jpeg/mate-Aqua.jpg');
const small = corpusFile('jpeg/skimage-coffee-q90.jpg');

function convert(
  input: Uint8Array,
  query: ResizeQuery,
  limits: ConversionLimits = testLimits,
  accept?: string,
) {
  const options = parseResizeOptions(query, { limits, ...(accept === undefined ? {} : { accept }) });
  return convertImage(input, options, limits);
}

async function sharpness(bytes: Uint8Array): Promise<number> {
  return (await sharp(bytes).stats()).sharpness;
}

describe('worker pipeline', () => {
  before(() => {
    sharp.concurrency(1);
    sharp.cache(false);
  });

  test('worker pipeline - every corpus JPEG converts to a 320 px wide JPEG', async () => {
    for (const name of corpusJpegNames()) {
      const input = corpusFile(`jpeg/${name}`);
      const result = await convert(input, { width: '320', quality: '80' });
      const metadata = await metadataOf(result.output);
      assert.equal(metadata.format, 'jpeg', name);
      assert.equal(metadata.width, 320, name);
      assert.equal(result.width, 320, name);
      assert.equal(result.height, metadata.height, name);
      assert.equal(result.contentType, 'image/jpeg');
      const source = await metadataOf(input);
      assert.equal(result.pixelsIn, source.width * source.height, name);
      assert.equal(result.pixelsOut, 320 * metadata.height, name);
      assert.equal(result.pagesIn, 1);
    }
  });

  test('worker pipeline - cover gives the exact box and crops', async () => {
    const result = await convert(landscape, { width: '300', height: '300', fit: 'cover' });
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.width, metadata.height], [300, 300]);
  });

  test('worker pipeline - inside fits within the box keeping the aspect ratio', async () => {
    const result = await convert(landscape, { width: '300', height: '300', fit: 'inside' });
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.width, metadata.height], [300, 188]);
  });

  test('worker pipeline - contain pads to the exact box with the background colour', async () => {
    const result = await convert(landscape, {
      width: '300',
      height: '300',
      fit: 'contain',
      background: 'ff0000',
      format: 'png',
    });
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.width, metadata.height], [300, 300]);
    // The 300×188 image is centred: the top and bottom bands are padding.
    assert.deepEqual((await pixelAt(result.output, 150, 5)).slice(0, 3), [255, 0, 0]);
    assert.deepEqual((await pixelAt(result.output, 150, 295)).slice(0, 3), [255, 0, 0]);
    const transparent = await convert(landscape, {
      width: '300',
      height: '300',
      fit: 'contain',
      format: 'png',
    });
    assert.equal((await pixelAt(transparent.output, 150, 5))[3], 0, 'padding defaults to transparent');
  });

  test('worker pipeline - contain with a gravity places the image against that edge', async () => {
    const result = await convert(landscape, {
      width: '300',
      height: '300',
      fit: 'contain',
      position: 'top',
      background: 'ff0000',
      format: 'png',
    });
    assert.notDeepEqual((await pixelAt(result.output, 150, 5)).slice(0, 3), [255, 0, 0]);
    assert.deepEqual((await pixelAt(result.output, 150, 295)).slice(0, 3), [255, 0, 0]);
  });

  test('worker pipeline - fill stretches to the box ignoring the aspect ratio', async () => {
    const result = await convert(landscape, { width: '300', height: '300', fit: 'fill' });
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.width, metadata.height], [300, 300]);
  });

  test('worker pipeline - outside covers the box without cropping', async () => {
    const result = await convert(landscape, { width: '300', height: '300', fit: 'outside' });
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.width, metadata.height], [480, 300]);
  });

  test('worker pipeline - cover position chooses which part survives the crop', async () => {
    // Top half white, bottom half black, 100×200.
    const halves = await sharp({ create: { width: 100, height: 200, channels: 3, background: 'black' } })
      .composite([
        { input: { create: { width: 100, height: 100, channels: 3, background: 'white' } }, top: 0, left: 0 },
      ])
      .png()
      .toBuffer();
    const top = await convert(halves, { width: '100', height: '100', position: 'top', format: 'png' });
    const bottom = await convert(halves, { width: '100', height: '100', position: 'bottom', format: 'png' });
    assert.equal((await sharp(top.output).stats()).channels[0]!.mean, 255);
    assert.equal((await sharp(bottom.output).stats()).channels[0]!.mean, 0);
    for (const strategy of ['attention', 'entropy']) {
      const result = await convert(landscape, { width: '200', height: '200', position: strategy });
      assert.deepEqual([result.width, result.height], [200, 200], strategy);
    }
  });

  test('worker pipeline - enlarge=false never upscales, enlarge=true does', async () => {
    const kept = await convert(small, { width: '1200' });
    assert.deepEqual([kept.width, kept.height], [600, 400]);
    const boxed = await convert(small, { width: '1200', height: '1000', fit: 'inside' });
    assert.deepEqual([boxed.width, boxed.height], [600, 400]);
    const cropped = await convert(small, { width: '1000', height: '300' });
    assert.deepEqual([cropped.width, cropped.height], [600, 300]);
    const padded = await convert(small, { width: '1000', height: '1000', fit: 'contain' });
    assert.deepEqual([padded.width, padded.height], [1000, 1000]);
    const enlarged = await convert(small, { width: '1200', enlarge: 'true' });
    const metadata = await metadataOf(enlarged.output);
    assert.deepEqual([metadata.width, metadata.height], [1200, 800]);
  });

  test('worker pipeline - dpr scales the output', async () => {
    const result = await convert(landscape, { width: '160', dpr: '2' });
    assert.deepEqual([result.width, result.height], [320, 200]);
    const fractional = await convert(landscape, { height: '100', dpr: '1.5' });
    assert.equal(fractional.height, 150);
  });

  test('worker pipeline - every output format is what it says', async () => {
    const expected = { jpeg: 'jpeg', png: 'png', webp: 'webp', avif: 'heif', gif: 'gif' } as const;
    for (const [format, decoded] of Object.entries(expected)) {
      const result = await convert(small, { width: '120', format });
      const metadata = await metadataOf(result.output);
      assert.equal(result.format, format);
      assert.equal(metadata.format, decoded, format);
      assert.equal(result.contentType, `image/${format}`);
      assert.deepEqual([metadata.width, metadata.height], [120, 80], format);
      if (format === 'avif') assert.equal(metadata.compression, 'av1');
    }
  });

  test('worker pipeline - format=auto follows Accept; absent format keeps the input format', async () => {
    const webp = await convert(small, { width: '100', format: 'auto' }, testLimits, 'image/webp,*/*');
    assert.equal((await metadataOf(webp.output)).format, 'webp');
    const png = await convert(corpusFile('other/skimage-chelsea.png'), { width: '100' });
    assert.equal(png.format, 'png');
    const fromWebp = await convert(corpusFile('other/skimage-coffee-q80.webp'), { width: '100' });
    assert.equal((await metadataOf(fromWebp.output)).format, 'webp');
  });

  test('worker pipeline - quality trades bytes for fidelity', async () => {
    const low = await convert(landscape, { width: '640', quality: '20' });
    const high = await convert(landscape, { width: '640', quality: '95' });
    assert.ok(low.output.length * 2 < high.output.length, `${low.output.length} vs ${high.output.length}`);
    const lowWebp = await convert(landscape, { width: '640', quality: '20', format: 'webp' });
    const highWebp = await convert(landscape, { width: '640', quality: '95', format: 'webp' });
    assert.ok(lowWebp.output.length < highWebp.output.length);
  });

  test('worker pipeline - lossless webp keeps every pixel', async () => {
    const reference = await sharp(small).resize({ width: 100 }).png().toBuffer();
    const result = await convert(reference, { format: 'webp', lossless: 'true' });
    const [expected, actual] = await Promise.all([
      sharp(reference).raw().toBuffer(),
      sharp(result.output).removeAlpha().raw().toBuffer(),
    ]);
    assert.deepEqual(actual, expected);
  });

  test('worker pipeline - progressive JPEG and interlaced PNG', async () => {
    const jpeg = await convert(small, { width: '100', progressive: 'true' });
    assert.equal((await metadataOf(jpeg.output)).isProgressive, true);
    const baseline = await convert(small, { width: '100' });
    assert.equal((await metadataOf(baseline.output)).isProgressive, false);
    const png = await convert(small, { width: '100', format: 'png', progressive: 'true' });
    assert.equal((await metadataOf(png.output)).isProgressive, true);
  });

  test('worker pipeline - blur softens and sharpen crispens', async () => {
    const plain = await convert(landscape, { width: '400', format: 'png' });
    const blurred = await convert(landscape, { width: '400', format: 'png', blur: '3' });
    const sharpened = await convert(landscape, { width: '400', format: 'png', sharpen: '2.0' });
    const mild = await convert(landscape, { width: '400', format: 'png', sharpen: 'true' });
    const base = await sharpness(plain.output);
    assert.ok((await sharpness(blurred.output)) < base * 0.8);
    assert.ok((await sharpness(sharpened.output)) > base);
    assert.ok((await sharpness(mild.output)) > base);
  });

  test('worker pipeline - strip removes EXIF, strip=false keeps it', async () => {
    const withExif = corpusFile('jpeg/mate-Dune-q85.jpg');
    assert.ok((await metadataOf(withExif)).exif, 'the corpus file carries EXIF');
    const stripped = await convert(withExif, { width: '200' });
    assert.equal((await metadataOf(stripped.output)).exif, undefined);
    const kept = await convert(withExif, { width: '200', strip: 'false' });
    assert.ok((await metadataOf(kept.output)).exif);
  });

  test('worker pipeline - autoOrient applies the EXIF rotation', async () => {
    const rotated = await rotatedExifJpeg();
    const oriented = await convert(rotated, { width: '50' });
    const metadata = await metadataOf(oriented.output);
    assert.deepEqual([metadata.width, metadata.height], [50, 100]);
    assert.equal(metadata.orientation, undefined);
    const raw = await convert(rotated, { width: '50', autoOrient: 'false' });
    const rawMetadata = await metadataOf(raw.output);
    assert.deepEqual([rawMetadata.width, rawMetadata.height], [50, 25]);
  });

  test('worker pipeline - animated keeps every frame, otherwise only the first', async () => {
    const gif = await animatedGif(5, 64, 48);
    const webp = await convert(gif, { width: '32', format: 'webp', animated: 'true' });
    const webpMetadata = await metadataOf(webp.output);
    assert.equal(webpMetadata.pages, 5);
    assert.deepEqual([webp.width, webp.height, webp.pagesIn], [32, 24, 5]);
    assert.equal(webp.pixelsIn, 64 * 48 * 5);
    assert.equal(webp.pixelsOut, 32 * 24 * 5);
    const keptGif = await convert(gif, { width: '32', animated: 'true' });
    assert.equal((await metadataOf(keptGif.output)).pages, 5);
    const still = await convert(gif, { width: '32', format: 'webp' });
    assert.equal((await metadataOf(still.output)).pages ?? 1, 1);
    assert.deepEqual([still.width, still.height, still.pagesIn], [32, 24, 1]);
  });

  test('worker pipeline - too many frames are refused before decoding them', async () => {
    const gif = await animatedGif(6, 16, 16);
    await assert.rejects(
      convert(gif, { animated: 'true' }, { ...testLimits, maxFrames: 5 }),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_TOO_MANY_FRAMES') && error.extensions.frames === 6,
    );
    // The cap applies only to kept frames: the first frame alone is fine.
    const still = await convert(gif, {}, { ...testLimits, maxFrames: 5 });
    assert.equal(still.pagesIn, 1);
  });

  test('worker pipeline - transparency is flattened onto the background for JPEG', async () => {
    const clear = await sharp({
      create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const white = await convert(clear, { format: 'jpeg' });
    assert.ok((await pixelAt(white.output, 10, 10)).every((channel) => channel > 250));
    const blue = await convert(clear, { format: 'jpeg', background: 'blue' });
    const [r, g, b] = await pixelAt(blue.output, 10, 10);
    assert.ok(r! < 5 && g! < 5 && b! > 250, `${r},${g},${b}`);
  });

  test('worker pipeline - a truncated JPEG is a corrupt image', async () => {
    const half = landscape.subarray(0, Math.floor(landscape.length / 2));
    await assert.rejects(convert(half, { width: '320' }), (error: unknown) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_CORRUPT_IMAGE'), String(error));
      assert.equal(error.status, 422);
      return true;
    });
  });

  test('worker pipeline - a derived dimension past the cap is refused before decoding', async () => {
    const sliver = await sharp({ create: { width: 1, height: 2000, channels: 3, background: 'white' } })
      .png()
      .toBuffer();
    await assert.rejects(convert(sliver, { width: '4000', enlarge: 'true' }), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_OUTPUT_TOO_LARGE'),
    );
    await assert.rejects(
      convert(sliver, { width: '100', height: '100', fit: 'outside', enlarge: 'true' }),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_OUTPUT_TOO_LARGE'),
    );
    await assert.rejects(
      convert(landscape, {}, { ...testLimits, maxOutputDimension: 2000 }),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_OUTPUT_TOO_LARGE'),
    );
  });

  test('worker pipeline - a format outside the allowlist is refused', async () => {
    const tiff = await sharp(small).resize({ width: 20 }).tiff().toBuffer();
    await assert.rejects(convert(tiff, {}), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_UNSUPPORTED_FORMAT'),
    );
    const allowed = await convert(tiff, {}, { ...testLimits, allowedFormats: new Set(['tiff']) });
    assert.equal(allowed.format, 'jpeg');
  });

  test('worker pipeline - output bounds consider the orientation', () => {
    const options = parseResizeOptions({ width: '100', enlarge: 'true' }, { limits: testLimits });
    assert.deepEqual(planOutputBounds({ format: 'jpeg', width: 10, height: 20 }, options), {
      width: 100,
      height: 200,
    });
    assert.deepEqual(planOutputBounds({ format: 'jpeg', width: 10, height: 20, orientation: 6 }, options), {
      width: 100,
      height: 50,
    });
    // Unknown orientation (not a JPEG): either way up.
    assert.deepEqual(planOutputBounds({ format: 'png', width: 10, height: 20 }, options), {
      width: 100,
      height: 200,
    });
    assert.deepEqual(planOutputBounds({ format: 'png', width: 20, height: 10 }, options), {
      width: 100,
      height: 200,
    });
  });
});
