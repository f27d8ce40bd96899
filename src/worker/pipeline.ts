/**
 * One conversion with sharp/libvips: inspect, plan, decode, resize, encode. This is the whole
 * cost a customer pays for, and the benchmark's "raw limit" calls it directly, so it does the
 * minimum: header checks are synchronous byte reads, the only extra libvips call is a metadata
 * read for animated input (to count frames before decoding them), and width/height go straight
 * to `resize` so libvips can shrink JPEG and WebP on load instead of decoding every pixel.
 *
 * Guarantees: every ResizeOptions field is honoured; an input outside the limits is refused
 * before decoding (format, pixels, frames, predicted output size); truncated or corrupt pixel
 * data fails with PF_ERR_CORRUPT_IMAGE rather than producing a half-grey image. Global sharp
 * settings (concurrency, cache) are the caller's business: the worker child sets them once.
 */
import sharp, { type OutputInfo, type Sharp } from 'sharp';
import { PixelfleetError } from '../errors/index.ts';
import { classifySharpError } from './conversion_errors.ts';
import { defaultAllowedInputFormats, inspectInput } from './inspect.ts';
import { planOutputBounds } from './output_size.ts';
import type {
  ConversionLimits,
  ConvertedImage,
  InputFormat,
  OutputFormat,
  Position,
  ResizeOptions,
  Rgba,
} from './types.ts';

export const outputContentTypes: Readonly<Record<OutputFormat, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
};

/** The output format when the request names none: the input's own, where we can encode it. */
export function outputFormatForInput(input: InputFormat): OutputFormat {
  switch (input) {
    case 'jpeg':
    case 'png':
    case 'webp':
    case 'gif':
    case 'avif':
      return input;
    case 'svg':
      return 'png'; // keeps transparency
    case 'heif': // the bundled libheif encodes AV1 only, not HEVC
    case 'tiff':
      return 'jpeg';
  }
}

const sharpPositions: Readonly<Record<Position, string>> = {
  center: 'centre',
  top: 'north',
  'top-right': 'northeast',
  right: 'east',
  'bottom-right': 'southeast',
  bottom: 'south',
  'bottom-left': 'southwest',
  left: 'west',
  'top-left': 'northwest',
  attention: 'attention',
  entropy: 'entropy',
};

const white: Rgba = { r: 255, g: 255, b: 255, alpha: 1 };
const transparent: Rgba = { r: 0, g: 0, b: 0, alpha: 0 };

/**
 * 'error' aborts on truncated data and decoder errors but tolerates libjpeg warnings such as
 * extraneous bytes before a marker, which many real camera files carry and every browser shows.
 */
const failOn = 'error';

export async function convertImage(
  input: Uint8Array,
  options: ResizeOptions,
  limits: ConversionLimits,
): Promise<ConvertedImage> {
  const inspection = inspectInput(input, {
    allowedFormats: limits.allowedFormats ?? defaultAllowedInputFormats,
    maxInputPixels: limits.maxInputPixels,
  });
  const format = options.format ?? outputFormatForInput(inspection.format);
  const bounds = planOutputBounds(inspection, options);
  if (bounds.width > limits.maxOutputDimension || bounds.height > limits.maxOutputDimension) {
    throw new PixelfleetError(
      'PF_ERR_OUTPUT_TOO_LARGE',
      `This input would produce up to ${bounds.width}×${bounds.height} pixels; the largest output ` +
        `dimension is ${limits.maxOutputDimension}. Give both width and height, or leave enlarge off.`,
      { extensions: { limit: limits.maxOutputDimension } },
    );
  }
  const animated = options.animated && (inspection.format === 'gif' || inspection.format === 'webp');
  const pagesIn = animated ? await countFrames(input, limits.maxFrames) : 1;

  let output: Buffer;
  let info: OutputInfo;
  try {
    ({ data: output, info } = await buildPipeline(
      input,
      options,
      format,
      limits.maxInputPixels * pagesIn,
      animated,
    ).toBuffer({
      resolveWithObject: true,
    }));
  } catch (error) {
    throw classifySharpError(error);
  }
  const pagesOut = info.pages ?? 1;
  const frameHeight = pagesOut > 1 ? (info.pageHeight ?? info.height / pagesOut) : info.height;
  return {
    output,
    format,
    contentType: outputContentTypes[format],
    width: info.width,
    height: frameHeight,
    pixelsIn: inspection.width * inspection.height * pagesIn,
    pixelsOut: info.width * frameHeight * pagesOut,
    pagesIn,
  };
}

function buildPipeline(
  input: Uint8Array,
  options: ResizeOptions,
  format: OutputFormat,
  limitInputPixels: number,
  animated: boolean,
): Sharp {
  const hasAlpha = format !== 'jpeg';
  const image = sharp(input, {
    failOn,
    // Backstop behind the header check: libvips re-checks the pixel count of what it decodes.
    limitInputPixels,
    autoOrient: options.autoOrient,
    animated,
  });
  if (options.width !== undefined || options.height !== undefined) {
    const placed = options.fit === 'cover' || options.fit === 'contain';
    image.resize({
      width: options.width,
      height: options.height,
      fit: options.fit,
      withoutEnlargement: !options.enlarge,
      background: options.background ?? (hasAlpha ? transparent : white),
      ...(placed ? { position: sharpPositions[options.position] } : {}),
    });
  }
  if (format === 'jpeg') image.flatten({ background: options.background ?? white });
  if (options.blur !== undefined) image.blur(options.blur);
  if (options.sharpen === true) image.sharpen();
  else if (typeof options.sharpen === 'number') image.sharpen({ sigma: options.sharpen });
  if (!options.strip) image.keepMetadata();
  encodeAs(image, format, options);
  return image;
}

/** Frames of an animated input, refused past the cap before any frame is decoded. */
async function countFrames(input: Uint8Array, maxFrames: number): Promise<number> {
  let pages: number;
  try {
    pages = (await sharp(input, { failOn }).metadata()).pages ?? 1;
  } catch (error) {
    throw classifySharpError(error);
  }
  if (pages > maxFrames) {
    throw new PixelfleetError(
      'PF_ERR_TOO_MANY_FRAMES',
      `The animation has ${pages} frames; at most ${maxFrames} can be kept. Send fewer frames or omit animated.`,
      { extensions: { frames: pages, limit: maxFrames } },
    );
  }
  return pages;
}

/**
 * Encoder effort is CPU the customer pays for. Measured on a 2560×1600 photo: AVIF effort 2 costs
 * a fifth of the default 4 (0.57 s vs 2.97 s CPU at 1600 px wide) for ~25 % larger files; GIF
 * effort 4 costs a third of the default 7 for ~5 % larger files.
 */
const avifEffort = 2;
const gifEffort = 4;

function encodeAs(image: Sharp, format: OutputFormat, options: ResizeOptions): void {
  // Quality only reaches lossy encoders; with format absent and a lossless input it is moot.
  const quality = options.quality === undefined ? {} : { quality: options.quality };
  switch (format) {
    case 'jpeg':
      image.jpeg({ ...quality, progressive: options.progressive });
      return;
    case 'png':
      image.png({ progressive: options.progressive });
      return;
    case 'webp':
      image.webp({ ...quality, lossless: options.lossless });
      return;
    case 'avif':
      image.avif({ ...quality, lossless: options.lossless, effort: avifEffort });
      return;
    case 'gif':
      image.gif({ progressive: options.progressive, effort: gifEffort });
      return;
  }
}
