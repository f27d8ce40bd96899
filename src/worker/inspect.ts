/**
 * Input inspection: what an upload is and how big it will be when decoded, learnt from magic
 * bytes and headers alone. It runs on the API's event loop before anything is queued, so it is
 * synchronous and touches only headers (microseconds, no pixel decode, no copy of the input).
 *
 * Guarantees: a format outside the allowlist fails with PF_ERR_UNSUPPORTED_FORMAT (415) whatever
 * the client claimed; an image whose header promises more than `maxInputPixels` fails with
 * PF_ERR_TOO_MANY_PIXELS (422) before a single pixel is decoded, which defuses decompression
 * bombs; a header that cannot be read fails with PF_ERR_CORRUPT_IMAGE (422). A truncated body
 * with a readable header passes here and is caught by the pipeline's decoder.
 */
import { imageSize } from 'image-size';
import { PixelfleetError } from '../errors/index.ts';
import {
  type HeaderDimensions,
  readGifDimensions,
  readHeifDimensions,
  readJpegDimensions,
  readPngDimensions,
  readWebpDimensions,
} from './image_headers.ts';
import type { InputFormat, InputInspection } from './types.ts';

export interface InspectionLimits {
  allowedFormats: ReadonlySet<InputFormat>;
  maxInputPixels: number;
}

/** The default allowlist. SVG is off: rendering it runs an XML parser and a renderer on user input. */
export const defaultAllowedInputFormats: ReadonlySet<InputFormat> = new Set<InputFormat>([
  'jpeg',
  'png',
  'webp',
  'gif',
  'avif',
]);

export const inputMimeTypes: Readonly<Record<InputFormat, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  heif: 'image/heif',
  tiff: 'image/tiff',
  svg: 'image/svg+xml',
};

const avifBrands = new Set(['avif', 'avis']);
const heifBrands = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1']);

function startsWith(bytes: Uint8Array, signature: readonly number[], at = 0): boolean {
  if (bytes.length < at + signature.length) return false;
  for (let index = 0; index < signature.length; index++)
    if (bytes[at + index] !== signature[index]) return false;
  return true;
}

function asciiAt(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  for (let index = start; index < end && index < bytes.length; index++)
    text += String.fromCharCode(bytes[index]!);
  return text;
}

/** Format from magic bytes, or undefined when nothing matches. Never trusts a declared type. */
export function sniffFormat(bytes: Uint8Array): InputFormat | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  const six = asciiAt(bytes, 0, 6);
  if (six === 'GIF87a' || six === 'GIF89a') return 'gif';
  if (asciiAt(bytes, 0, 4) === 'RIFF' && asciiAt(bytes, 8, 12) === 'WEBP') return 'webp';
  if (asciiAt(bytes, 4, 8) === 'ftyp') return sniffIsoBrand(bytes);
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a]))
    return 'tiff';
  if (looksLikeSvg(bytes)) return 'svg';
  return undefined;
}

/** ISO base media files: AVIF or HEIF by the major and compatible brands of the ftyp box. */
function sniffIsoBrand(bytes: Uint8Array): InputFormat | undefined {
  const boxSize = ((bytes[0]! << 24) >>> 0) + ((bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!);
  const end = Math.min(bytes.length, boxSize);
  const brands = [asciiAt(bytes, 8, 12)];
  for (let offset = 16; offset + 4 <= end; offset += 4) brands.push(asciiAt(bytes, offset, offset + 4));
  if (brands.some((brand) => avifBrands.has(brand))) return 'avif';
  if (brands.some((brand) => heifBrands.has(brand))) return 'heif';
  return undefined;
}

function looksLikeSvg(bytes: Uint8Array): boolean {
  let start = startsWith(bytes, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (
    start < bytes.length &&
    (bytes[start] === 0x20 || (bytes[start]! >= 0x09 && bytes[start]! <= 0x0d))
  ) {
    start++;
  }
  if (bytes[start] !== 0x3c) return false; // '<'
  return /<svg[\s>]/i.test(asciiAt(bytes, start, start + 4096));
}

function readDimensions(format: InputFormat, bytes: Uint8Array): HeaderDimensions {
  switch (format) {
    case 'jpeg':
      return readJpegDimensions(bytes);
    case 'png':
      return readPngDimensions(bytes);
    case 'gif':
      return readGifDimensions(bytes);
    case 'webp':
      return readWebpDimensions(bytes);
    case 'avif':
    case 'heif':
      return readHeifDimensions(bytes);
    case 'tiff':
    case 'svg': {
      // Rare formats (off by default): the image-size package reads these headers.
      const size = imageSize(bytes);
      return { width: size.width, height: size.height };
    }
  }
}

export function inspectInput(bytes: Uint8Array, limits: InspectionLimits): InputInspection {
  const format = sniffFormat(bytes);
  if (format === undefined) {
    throw new PixelfleetError(
      'PF_ERR_UNSUPPORTED_FORMAT',
      `The input is not a recognised image. Send one of: ${[...limits.allowedFormats].join(', ')}.`,
    );
  }
  if (!limits.allowedFormats.has(format)) {
    throw new PixelfleetError(
      'PF_ERR_UNSUPPORTED_FORMAT',
      `${format} input is not accepted. Send one of: ${[...limits.allowedFormats].join(', ')}.`,
      { extensions: { format } },
    );
  }
  let dimensions: HeaderDimensions;
  try {
    dimensions = readDimensions(format, bytes);
  } catch (error) {
    throw new PixelfleetError('PF_ERR_CORRUPT_IMAGE', `The ${format} header cannot be read.`, {
      cause: error,
      extensions: { format },
    });
  }
  const { width, height } = dimensions;
  if (!(width >= 1 && height >= 1)) {
    throw new PixelfleetError('PF_ERR_CORRUPT_IMAGE', `The ${format} header has no usable dimensions.`, {
      extensions: { format },
    });
  }
  if (width * height > limits.maxInputPixels) {
    throw new PixelfleetError(
      'PF_ERR_TOO_MANY_PIXELS',
      `The input is ${width}×${height} (${width * height} pixels); the limit is ${limits.maxInputPixels} pixels.`,
      { extensions: { width, height, limit: limits.maxInputPixels } },
    );
  }
  const inspection: InputInspection = { format, width, height, mimeType: inputMimeTypes[format] };
  if (dimensions.orientation !== undefined) inspection.orientation = dimensions.orientation;
  return inspection;
}
