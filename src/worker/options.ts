/**
 * Turns the query parameters of a resize request into validated `ResizeOptions`. Pure: no I/O,
 * no clock, so the API can validate on its event loop before anything is queued, and the worker
 * can trust what it receives.
 *
 * Guarantees: every parameter is known (else PF_ERR_UNKNOWN_OPTION), given once and well formed
 * (else PF_ERR_INVALID_OPTION naming the option and what it allows), consistent with the others
 * (else PF_ERR_CONFLICTING_OPTIONS), and the requested output fits the dimension cap (else
 * PF_ERR_OUTPUT_TOO_LARGE). A request with no width, height or format is valid: it re-encodes the
 * image at its own size in its own format (stripping metadata and applying the orientation), a
 * cheap way to sanitise uploads; the pipeline still enforces the output cap on it.
 */
import { PixelfleetError } from '../errors/index.ts';
import { acceptsMediaType } from './accept.ts';
import { parseColour } from './colour.ts';
import { resizeOptionDocs } from './option_docs.ts';
import type { ConversionLimits, Fit, OutputFormat, Position, ResizeOptions } from './types.ts';

export { type ResizeOptionDoc, resizeOptionDocs } from './option_docs.ts';

export type ResizeQuery = Record<string, string | string[] | undefined>;

export interface ResizeOptionContext {
  /** The request's Accept header, consulted only by `format=auto`. */
  accept?: string;
  /** Parsing reads only these two; the caller may pass its whole set of conversion limits. */
  limits: Partial<ConversionLimits> & {
    /** Largest output width or height in device pixels (after dpr). */
    maxOutputDimension: number;
    /** Highest quality this caller may ask for (a tier limit); default 100. */
    maxQuality?: number;
  };
  /** Query parameters that belong to the caller (e.g. `async`): skipped, not rejected. */
  ignoredParameters?: Iterable<string>;
}

const knownParameters: ReadonlySet<string> = new Set(resizeOptionDocs.map((doc) => doc.name));

const fits: ReadonlySet<string> = new Set<Fit>(['cover', 'contain', 'fill', 'inside', 'outside']);

const positionAliases: Readonly<Record<string, Position>> = {
  center: 'center',
  centre: 'center',
  top: 'top',
  north: 'top',
  right: 'right',
  east: 'right',
  bottom: 'bottom',
  south: 'bottom',
  left: 'left',
  west: 'left',
  'top-right': 'top-right',
  'right-top': 'top-right',
  northeast: 'top-right',
  'top-left': 'top-left',
  'left-top': 'top-left',
  northwest: 'top-left',
  'bottom-right': 'bottom-right',
  'right-bottom': 'bottom-right',
  southeast: 'bottom-right',
  'bottom-left': 'bottom-left',
  'left-bottom': 'bottom-left',
  southwest: 'bottom-left',
  attention: 'attention',
  entropy: 'entropy',
};

const formatAliases: Readonly<Record<string, OutputFormat | 'auto'>> = {
  jpeg: 'jpeg',
  jpg: 'jpeg',
  png: 'png',
  webp: 'webp',
  avif: 'avif',
  gif: 'gif',
  auto: 'auto',
};

const integerPattern = /^\d+$/;
const decimalPattern = /^\d+(\.\d+)?$/;

export function parseResizeOptions(query: ResizeQuery, context: ResizeOptionContext): ResizeOptions {
  const ignored = new Set(context.ignoredParameters ?? []);
  for (const name of Object.keys(query)) {
    if (query[name] === undefined || ignored.has(name)) continue;
    if (!knownParameters.has(name)) {
      throw new PixelfleetError(
        'PF_ERR_UNKNOWN_OPTION',
        `Unknown option '${clip(name)}'. Known options: ${[...knownParameters].join(', ')}.`,
        { extensions: { option: name } },
      );
    }
  }
  const value = (name: string): string | undefined => singleValue(query, name);

  const maxQuality = context.limits.maxQuality ?? 100;
  const dpr = parseDecimal('dpr', value('dpr'), 1, 5, '1 to 5') ?? 1;
  const cssWidth = parseDimension('width', value('width'));
  const cssHeight = parseDimension('height', value('height'));
  const fitText = value('fit');
  const fit = parseEnum('fit', fitText, fits, 'cover | contain | fill | inside | outside') as Fit | undefined;
  const positionText = value('position');
  const position = parsePosition(positionText);
  const requestedFormat = parseFormat(value('format'));
  const quality = parseQuality(value('quality'), maxQuality);
  const backgroundText = value('background');
  const background = backgroundText === undefined ? undefined : parseBackground(backgroundText);
  const blur = parseDecimal('blur', value('blur'), 0.3, 1000, 'a sigma from 0.3 to 1000');
  const sharpen = parseSharpen(value('sharpen'));
  const enlarge = parseBoolean('enlarge', value('enlarge')) ?? false;
  const strip = parseBoolean('strip', value('strip')) ?? true;
  const autoOrient = parseBoolean('autoOrient', value('autoOrient')) ?? true;
  const progressive = parseBoolean('progressive', value('progressive')) ?? false;
  const lossless = parseBoolean('lossless', value('lossless')) ?? false;
  const animated = parseBoolean('animated', value('animated')) ?? false;

  const format =
    requestedFormat === 'auto' ? negotiateFormat(context.accept, { lossless, animated }) : requestedFormat;

  // Contradictions, checked after every value is known to be well formed.
  if (position !== undefined && fit !== undefined && fit !== 'cover' && fit !== 'contain') {
    throw conflict(`position applies to fit=cover or fit=contain, not fit=${fit}.`, ['position', 'fit']);
  }
  if ((position === 'attention' || position === 'entropy') && fit === 'contain') {
    throw conflict(`position=${position} is a crop strategy: it needs fit=cover.`, ['position', 'fit']);
  }
  if (lossless && format !== 'webp' && format !== 'avif') {
    throw conflict(`lossless needs format=webp, format=avif or format=auto, not ${describeFormat(format)}.`, [
      'lossless',
      'format',
    ]);
  }
  if (quality !== undefined && lossless) {
    throw conflict('quality has no meaning for lossless output.', ['quality', 'lossless']);
  }
  if (quality !== undefined && (format === 'png' || format === 'gif')) {
    throw conflict(`quality applies to jpeg, webp and avif, not format=${format}.`, ['quality', 'format']);
  }
  if (progressive && (format === 'webp' || format === 'avif')) {
    throw conflict(`progressive applies to jpeg, png and gif, not format=${format}.`, [
      'progressive',
      'format',
    ]);
  }
  if (animated && (format === 'jpeg' || format === 'png' || format === 'avif')) {
    throw conflict(`animated output needs format=gif or format=webp, not format=${format}.`, [
      'animated',
      'format',
    ]);
  }
  if (animated && (position === 'attention' || position === 'entropy')) {
    throw conflict(`position=${position} cannot crop animated output.`, ['animated', 'position']);
  }
  if (value('dpr') !== undefined && cssWidth === undefined && cssHeight === undefined) {
    throw conflict('dpr multiplies width and height: give at least one of them.', ['dpr', 'width', 'height']);
  }

  const width = scaleDimension('width', cssWidth, dpr, context.limits.maxOutputDimension);
  const height = scaleDimension('height', cssHeight, dpr, context.limits.maxOutputDimension);

  const options: ResizeOptions = {
    fit: fit ?? 'cover',
    position: position ?? 'center',
    variesOnAccept: requestedFormat === 'auto',
    sharpen: sharpen ?? false,
    dpr,
    enlarge,
    strip,
    autoOrient,
    progressive,
    lossless,
    animated,
  };
  if (width !== undefined) options.width = width;
  if (height !== undefined) options.height = height;
  if (format !== undefined) options.format = format;
  if (quality !== undefined) options.quality = quality;
  if (background !== undefined) options.background = background;
  if (blur !== undefined) options.blur = blur;
  return options;
}

/**
 * `format=auto`: webp if the client accepts it, else avif, else jpeg. Constraints narrow the
 * choice: lossless output needs webp or avif (406 when neither is accepted), animated output
 * needs webp or falls back to gif, which every client decodes.
 */
function negotiateFormat(
  accept: string | undefined,
  constraints: { lossless: boolean; animated: boolean },
): OutputFormat {
  const webp = acceptsMediaType(accept, 'image/webp');
  if (webp) return 'webp';
  if (constraints.animated) return 'gif';
  if (acceptsMediaType(accept, 'image/avif')) return 'avif';
  if (constraints.lossless) {
    throw new PixelfleetError(
      'PF_ERR_NOT_ACCEPTABLE',
      'lossless with format=auto needs an Accept header listing image/webp or image/avif.',
      { extensions: { option: 'format' } },
    );
  }
  return 'jpeg';
}

function singleValue(query: ResizeQuery, name: string): string | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (typeof raw === 'string') return raw;
  if (raw.length === 1) return raw[0];
  throw invalid(name, 'one value (the parameter is repeated)', undefined);
}

function parseDimension(name: 'width' | 'height', text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!integerPattern.test(text) || Number(text) < 1) {
    throw invalid(name, 'a whole number of pixels, at least 1', text);
  }
  return Number(text);
}

function scaleDimension(
  name: 'width' | 'height',
  cssPixels: number | undefined,
  dpr: number,
  maxOutputDimension: number,
): number | undefined {
  if (cssPixels === undefined) return undefined;
  const devicePixels = Math.max(1, Math.round(cssPixels * dpr));
  if (devicePixels > maxOutputDimension) {
    throw new PixelfleetError(
      'PF_ERR_OUTPUT_TOO_LARGE',
      `${name} × dpr is ${devicePixels} pixels; the largest output dimension is ${maxOutputDimension}.`,
      { extensions: { option: name, limit: maxOutputDimension } },
    );
  }
  return devicePixels;
}

function parseDecimal(
  name: string,
  text: string | undefined,
  min: number,
  max: number,
  allowed: string,
): number | undefined {
  if (text === undefined) return undefined;
  const number = Number(text);
  if (!decimalPattern.test(text) || number < min || number > max) throw invalid(name, allowed, text);
  return number;
}

function parseQuality(text: string | undefined, maxQuality: number): number | undefined {
  if (text === undefined) return undefined;
  const allowed = `a whole number from 1 to ${maxQuality}`;
  if (!integerPattern.test(text)) throw invalid('quality', allowed, text);
  const quality = Number(text);
  if (quality < 1 || quality > maxQuality) throw invalid('quality', allowed, text);
  return quality;
}

function parseBoolean(name: string, text: string | undefined): boolean | undefined {
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  throw invalid(name, 'true, false, 1 or 0', text);
}

function parseSharpen(text: string | undefined): boolean | number | undefined {
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  const sigma = Number(text);
  if (!decimalPattern.test(text) || sigma < 0.01 || sigma > 10) {
    throw invalid('sharpen', 'true, false, 1, 0 or a sigma from 0.01 to 10', text);
  }
  return sigma;
}

function parseEnum(
  name: string,
  text: string | undefined,
  values: ReadonlySet<string>,
  allowed: string,
): string | undefined {
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  if (!values.has(lower)) throw invalid(name, allowed, text);
  return lower;
}

function parsePosition(text: string | undefined): Position | undefined {
  if (text === undefined) return undefined;
  const key = text.toLowerCase();
  const position = Object.hasOwn(positionAliases, key) ? positionAliases[key] : undefined;
  if (position === undefined) {
    throw invalid(
      'position',
      'center, top, right, bottom, left, top-right, top-left, bottom-right, bottom-left, attention or entropy',
      text,
    );
  }
  return position;
}

function parseFormat(text: string | undefined): OutputFormat | 'auto' | undefined {
  if (text === undefined) return undefined;
  const key = text.toLowerCase();
  const format = Object.hasOwn(formatAliases, key) ? formatAliases[key] : undefined;
  if (format === undefined) throw invalid('format', 'jpeg, png, webp, avif, gif or auto', text);
  return format;
}

function parseBackground(text: string) {
  const colour = parseColour(text);
  if (colour === undefined) {
    throw invalid(
      'background',
      'hex #rgb, #rgba, #rrggbb or #rrggbbaa, or black, white, transparent, gray, red, green, blue',
      text,
    );
  }
  return colour;
}

function describeFormat(format: OutputFormat | undefined): string {
  return format === undefined ? 'the input format' : `format=${format}`;
}

function invalid(option: string, allowed: string, received: string | undefined): PixelfleetError {
  const got = received === undefined ? '' : ` (got '${clip(received)}')`;
  return new PixelfleetError('PF_ERR_INVALID_OPTION', `${option} must be ${allowed}${got}.`, {
    extensions: { option, allowed },
  });
}

function conflict(detail: string, options: string[]): PixelfleetError {
  return new PixelfleetError('PF_ERR_CONFLICTING_OPTIONS', detail, { extensions: { options } });
}

/** Echo user input into messages only in bounded, printable form. */
function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 40 ? `${printable.slice(0, 40)}…` : printable;
}
