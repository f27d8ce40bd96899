/**
 * Colour values for the `background` option: hex (#rgb, #rgba, #rrggbb, #rrggbbaa, with or without the
 * leading '#', since '#' starts a URL fragment and clients often leave it out) and a handful of
 * names. Pure; returns undefined for anything else so the caller can name the option in its error.
 */
import type { Rgba } from './types.ts';

export const namedColours: Readonly<Record<string, Rgba>> = {
  black: { r: 0, g: 0, b: 0, alpha: 1 },
  white: { r: 255, g: 255, b: 255, alpha: 1 },
  transparent: { r: 0, g: 0, b: 0, alpha: 0 },
  gray: { r: 128, g: 128, b: 128, alpha: 1 },
  grey: { r: 128, g: 128, b: 128, alpha: 1 },
  red: { r: 255, g: 0, b: 0, alpha: 1 },
  green: { r: 0, g: 128, b: 0, alpha: 1 },
  blue: { r: 0, g: 0, b: 255, alpha: 1 },
};

const hexPattern = /^#?([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;

export function parseColour(text: string): Rgba | undefined {
  const name = text.toLowerCase();
  if (Object.hasOwn(namedColours, name)) return { ...namedColours[name]! };
  const match = hexPattern.exec(text);
  if (match === null) return undefined;
  let digits = match[1]!;
  if (digits.length <= 4) digits = [...digits].map((digit) => digit + digit).join('');
  const channel = (index: number) => Number.parseInt(digits.slice(index * 2, index * 2 + 2), 16);
  const alpha = digits.length === 8 ? Math.round((channel(3) / 255) * 1000) / 1000 : 1;
  return { r: channel(0), g: channel(1), b: channel(2), alpha };
}
