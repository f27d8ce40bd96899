/**
 * Shared vocabulary of the conversion engine: the validated resize options a job carries, the
 * limits a conversion runs under, and what a conversion returns. Everything here is plain data
 * that survives JSON (job descriptors) and structured clone (the worker IPC channel).
 */

/** Input formats the sniffer recognises; which of them are accepted is a limit. */
export type InputFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'heif' | 'tiff' | 'svg';

/** Formats the engine can encode. */
export type OutputFormat = 'jpeg' | 'png' | 'webp' | 'avif' | 'gif';

/** How the image fits a width × height box (CSS object-fit vocabulary, as libvips/sharp use it). */
export type Fit = 'cover' | 'contain' | 'fill' | 'inside' | 'outside';

/** Edge or corner the image is anchored to when cropping (cover) or padding (contain). */
export type Gravity =
  | 'center'
  | 'top'
  | 'top-right'
  | 'right'
  | 'bottom-right'
  | 'bottom'
  | 'bottom-left'
  | 'left'
  | 'top-left';

/** Content-aware crop strategies, `cover` only: keep the busiest (entropy) or most salient (attention) region. */
export type CropStrategy = 'attention' | 'entropy';

export type Position = Gravity | CropStrategy;

/** An sRGB colour with alpha in 0..1. */
export interface Rgba {
  r: number;
  g: number;
  b: number;
  alpha: number;
}

/**
 * Validated, normalised resize options (the output of `parseResizeOptions`). Dimensions are
 * already multiplied by `dpr`, so the pipeline never looks at `dpr` again.
 */
export interface ResizeOptions {
  /** Output width in device pixels; absent = derived from height and the aspect ratio. */
  width?: number;
  /** Output height in device pixels; absent = derived from width and the aspect ratio. */
  height?: number;
  fit: Fit;
  position: Position;
  /** Output format; absent = the input's own format (see `outputFormatForInput`). */
  format?: OutputFormat;
  /** True when `format=auto` chose the format from Accept: the response must carry `Vary: Accept`. */
  variesOnAccept: boolean;
  /** Encoder quality 1–100; absent = the encoder's default (jpeg 80, webp 80, avif 50). */
  quality?: number;
  /** Padding colour for `contain` and the matte for flattening transparency onto JPEG. */
  background?: Rgba;
  /** Gaussian blur sigma. */
  blur?: number;
  /** false = off, true = a mild fast sharpen, a number = sharpen with that sigma. */
  sharpen: boolean | number;
  /** Device pixel ratio the dimensions were multiplied by (kept for logs and metering). */
  dpr: number;
  /** Allow upscaling beyond the input's own dimensions. */
  enlarge: boolean;
  /** Drop EXIF/XMP/IPTC/ICC metadata (pixels are converted to sRGB). */
  strip: boolean;
  /** Rotate/flip according to the EXIF orientation tag. */
  autoOrient: boolean;
  /** Progressive JPEG, interlaced PNG/GIF. */
  progressive: boolean;
  /** Lossless WebP/AVIF encoding. */
  lossless: boolean;
  /** Keep every frame of an animated GIF/WebP; false = first frame only. */
  animated: boolean;
}

/** Limits one conversion runs under; every one is a defence against hostile or accidental input. */
export interface ConversionLimits {
  /** Input formats accepted (others fail with PF_ERR_UNSUPPORTED_FORMAT); default jpeg, png, webp, gif, avif. */
  allowedFormats?: ReadonlySet<InputFormat>;
  /** Largest width × height of one input frame (decompression-bomb guard). */
  maxInputPixels: number;
  /** Largest output width or height, in device pixels. */
  maxOutputDimension: number;
  /** Most frames an animated input may have when `animated` is requested. */
  maxFrames: number;
}

/** What the header of an input says, learnt without decoding pixels. */
export interface InputInspection {
  format: InputFormat;
  width: number;
  height: number;
  mimeType: string;
  /** EXIF orientation 1–8 when the header carries one (JPEG only; others report undefined). */
  orientation?: number;
}

/** The result of one conversion, as `convertImage` returns it. */
export interface ConvertedImage {
  output: Buffer;
  format: OutputFormat;
  contentType: string;
  /** Output width in pixels. */
  width: number;
  /** Output height in pixels (of one frame when animated). */
  height: number;
  /** Pixels decoded: input width × height × frames read. */
  pixelsIn: number;
  /** Pixels encoded: output width × height × frames written. */
  pixelsOut: number;
  /** Frames read from the input (1 unless `animated`). */
  pagesIn: number;
}

/** A conversion as the worker pool reports it: the image plus what it cost (for metering). */
export interface ConversionResult extends ConvertedImage {
  /** CPU time the child process spent in user mode during the conversion, in µs. */
  cpuUserMicros: number;
  /** CPU time the child process spent in kernel mode during the conversion, in µs. */
  cpuSystemMicros: number;
  bytesIn: number;
  bytesOut: number;
  /** Wall time of the conversion inside the child, in ms. */
  wallMs: number;
  /** Time the call waited in the pool's queue for a free child, in ms. */
  queueWaitMs: number;
  /** Slot number (0-based) of the child that converted; stable across restarts of that slot. */
  workerId: number;
  /** Resident set size of that child right after the conversion, in bytes. */
  workerRss: number;
}
