/**
 * Reads image dimensions from container headers without decoding pixels: a few dozen bytes for
 * PNG, GIF and WebP, a walk over segment headers for JPEG and over boxes for HEIF/AVIF. Every
 * read is bounds-checked; a header that cannot be read throws `HeaderError`, which the caller
 * maps to PF_ERR_CORRUPT_IMAGE. Nothing here copies the input.
 */

export interface HeaderDimensions {
  width: number;
  height: number;
  orientation?: number;
}

export class HeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeaderError';
  }
}

function u16be(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function u16le(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8);
}

function u24le(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16);
}

function u32be(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) >>> 0) +
    ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!)
  );
}

function u32le(bytes: Uint8Array, offset: number): number {
  return u16le(bytes, offset) + u16le(bytes, offset + 2) * 0x10000;
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  for (let index = start; index < end && index < bytes.length; index++)
    text += String.fromCharCode(bytes[index]!);
  return text;
}

function need(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length < length) throw new HeaderError(`${what} header is truncated`);
}

function nonZero(dimensions: HeaderDimensions, what: string): HeaderDimensions {
  if (dimensions.width < 1 || dimensions.height < 1)
    throw new HeaderError(`${what} header has a zero dimension`);
  return dimensions;
}

export function readPngDimensions(bytes: Uint8Array): HeaderDimensions {
  need(bytes, 24, 'PNG');
  if (ascii(bytes, 12, 16) !== 'IHDR') throw new HeaderError('PNG does not start with an IHDR chunk');
  return nonZero({ width: u32be(bytes, 16), height: u32be(bytes, 20) }, 'PNG');
}

export function readGifDimensions(bytes: Uint8Array): HeaderDimensions {
  need(bytes, 10, 'GIF');
  return nonZero({ width: u16le(bytes, 6), height: u16le(bytes, 8) }, 'GIF');
}

export function readWebpDimensions(bytes: Uint8Array): HeaderDimensions {
  need(bytes, 16, 'WebP');
  const chunk = ascii(bytes, 12, 16);
  if (chunk === 'VP8 ') {
    need(bytes, 30, 'WebP');
    if (bytes[23] !== 0x9d || bytes[24] !== 0x01 || bytes[25] !== 0x2a) {
      throw new HeaderError('WebP VP8 frame has no start code');
    }
    return nonZero({ width: u16le(bytes, 26) & 0x3fff, height: u16le(bytes, 28) & 0x3fff }, 'WebP');
  }
  if (chunk === 'VP8L') {
    need(bytes, 25, 'WebP');
    if (bytes[20] !== 0x2f) throw new HeaderError('WebP VP8L chunk has no signature');
    const bits = u32le(bytes, 21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') {
    need(bytes, 30, 'WebP');
    return { width: u24le(bytes, 24) + 1, height: u24le(bytes, 27) + 1 };
  }
  throw new HeaderError(`WebP has an unknown first chunk '${chunk}'`);
}

const startOfFrameMarkers = new Set([
  0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf,
]);

/** Walks JPEG marker segments up to the first start-of-frame, picking up the EXIF orientation. */
export function readJpegDimensions(bytes: Uint8Array): HeaderDimensions {
  let offset = 2;
  let orientation: number | undefined;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) throw new HeaderError(`JPEG has no marker at byte ${offset}`);
    const marker = bytes[offset + 1]!;
    if (marker === 0xff) {
      offset += 1; // fill byte before a marker
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      offset += 2; // standalone markers carry no length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda)
      throw new HeaderError('JPEG has no frame header before its scan data');
    const length = u16be(bytes, offset + 2);
    if (length < 2) throw new HeaderError('JPEG segment has an impossible length');
    if (startOfFrameMarkers.has(marker)) {
      need(bytes, offset + 9, 'JPEG');
      const dimensions = nonZero(
        { height: u16be(bytes, offset + 5), width: u16be(bytes, offset + 7) },
        'JPEG',
      );
      return orientation === undefined ? dimensions : { ...dimensions, orientation };
    }
    if (marker === 0xe1 && orientation === undefined) {
      orientation = readExifOrientation(bytes, offset + 4, Math.min(bytes.length, offset + 2 + length));
    }
    offset += 2 + length;
  }
  throw new HeaderError('JPEG ends before its frame header');
}

/** Orientation tag (0x0112) of IFD0 in an APP1 Exif segment spanning [start, end). */
function readExifOrientation(bytes: Uint8Array, start: number, end: number): number | undefined {
  if (end - start < 14 || ascii(bytes, start, start + 6) !== 'Exif\0\0') return undefined;
  const tiff = start + 6;
  const order = ascii(bytes, tiff, tiff + 2);
  if (order !== 'II' && order !== 'MM') return undefined;
  const little = order === 'II';
  const read16 = (at: number) => (little ? u16le(bytes, at) : u16be(bytes, at));
  const read32 = (at: number) => (little ? u32le(bytes, at) : u32be(bytes, at));
  const ifd = tiff + read32(tiff + 4);
  if (ifd + 2 > end) return undefined;
  const entries = read16(ifd);
  for (let index = 0; index < entries; index++) {
    const entry = ifd + 2 + index * 12;
    if (entry + 12 > end) return undefined;
    if (read16(entry) === 0x0112 && read16(entry + 2) === 3) {
      const value = read16(entry + 8);
      return value >= 1 && value <= 8 ? value : undefined;
    }
  }
  return undefined;
}

interface Box {
  type: string;
  /** First byte of the payload. */
  start: number;
  /** One past the last byte of the box. */
  end: number;
}

function* boxes(bytes: Uint8Array, start: number, end: number): Generator<Box> {
  let offset = start;
  while (offset + 8 <= end) {
    let size = u32be(bytes, offset);
    const type = ascii(bytes, offset + 4, offset + 8);
    let header = 8;
    if (size === 1) {
      if (offset + 16 > end) return;
      size = u32be(bytes, offset + 8) * 0x1_0000_0000 + u32be(bytes, offset + 12);
      header = 16;
    } else if (size === 0) {
      size = end - offset;
    }
    if (size < header) throw new HeaderError(`HEIF box '${type}' has an impossible size`);
    yield { type, start: offset + header, end: Math.min(end, offset + size) };
    offset += size;
  }
}

function findBox(bytes: Uint8Array, start: number, end: number, type: string): Box | undefined {
  for (const box of boxes(bytes, start, end)) if (box.type === type) return box;
  return undefined;
}

/**
 * HEIF/AVIF: the image spatial extents ('ispe') properties in meta/iprp/ipco. A file may hold
 * several images (grid tiles, thumbnails, the grid itself); the largest bounds the decode.
 */
export function readHeifDimensions(bytes: Uint8Array): HeaderDimensions {
  const meta = findBox(bytes, 0, bytes.length, 'meta');
  if (meta === undefined) throw new HeaderError('HEIF has no meta box');
  // meta is a full box: 4 bytes of version and flags precede its children.
  const properties = findBox(bytes, meta.start + 4, meta.end, 'iprp');
  const container = properties && findBox(bytes, properties.start, properties.end, 'ipco');
  if (container === undefined) throw new HeaderError('HEIF has no item properties');
  let largest: HeaderDimensions | undefined;
  for (const box of boxes(bytes, container.start, container.end)) {
    if (box.type !== 'ispe' || box.end - box.start < 12) continue;
    const width = u32be(bytes, box.start + 4);
    const height = u32be(bytes, box.start + 8);
    if (largest === undefined || width * height > largest.width * largest.height) largest = { width, height };
  }
  if (largest === undefined) throw new HeaderError('HEIF has no image extents');
  return nonZero(largest, 'HEIF');
}
