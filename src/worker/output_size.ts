/**
 * Predicts, before decoding, an upper bound on the output size of a resize. Parsing already caps
 * the requested width and height, but some results are derived from the input's aspect ratio
 * (one dimension given, fit=outside, no dimensions at all), so a tiny 1×5000 input with
 * `width=4000&enlarge=true` would otherwise ask libvips for a 4000×20 000 000 image. Pure.
 */
import type { InputInspection, ResizeOptions } from './types.ts';

export interface OutputBounds {
  width: number;
  height: number;
}

type Dimensions = readonly [width: number, height: number];

function scaled([width, height]: Dimensions, scale: number): OutputBounds {
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

function boundFor(input: Dimensions, options: ResizeOptions): OutputBounds {
  const [inputWidth, inputHeight] = input;
  const limitScale = (scale: number) => (options.enlarge ? scale : Math.min(scale, 1));
  const { width, height } = options;
  if (width === undefined && height === undefined) return { width: inputWidth, height: inputHeight };
  if (height === undefined) return scaled(input, limitScale(width! / inputWidth));
  if (width === undefined) return scaled(input, limitScale(height / inputHeight));
  if (options.fit === 'outside') {
    return scaled(input, limitScale(Math.max(width / inputWidth, height / inputHeight)));
  }
  // cover, contain, fill and inside never exceed the requested box.
  return { width, height };
}

/**
 * The largest output frame the options can produce from this input. When the EXIF orientation
 * is unknown (only JPEG headers are read for it) and auto-orientation is on, both the upright
 * and the quarter-turned input are considered, so the bound holds either way.
 */
export function planOutputBounds(
  input: Pick<InputInspection, 'width' | 'height' | 'orientation' | 'format'>,
  options: ResizeOptions,
): OutputBounds {
  const upright: Dimensions = [input.width, input.height];
  const turned: Dimensions = [input.height, input.width];
  const orientationKnown = input.format === 'jpeg' || input.orientation !== undefined;
  const candidates: Dimensions[] = !options.autoOrient
    ? [upright]
    : orientationKnown
      ? [(input.orientation ?? 1) >= 5 ? turned : upright]
      : [upright, turned];
  let bound: OutputBounds = { width: 0, height: 0 };
  for (const candidate of candidates) {
    const next = boundFor(candidate, options);
    bound = { width: Math.max(bound.width, next.width), height: Math.max(bound.height, next.height) };
  }
  return bound;
}
