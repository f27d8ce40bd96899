/**
 * Just enough of HTTP content negotiation (RFC 9110 §12.5.1) for `format=auto`: does an Accept
 * header explicitly list an image type with a non-zero weight? Wildcards do not count, because
 * browsers send `image/*` or `*∕*` while only decoding the modern formats they name.
 */

export function acceptsMediaType(accept: string | undefined, mediaType: string): boolean {
  if (accept === undefined || accept === '') return false;
  for (const range of accept.split(',')) {
    const [typePart, ...parameters] = range.split(';');
    if (typePart?.trim().toLowerCase() !== mediaType) continue;
    let weight = 1;
    for (const parameter of parameters) {
      const [key, value] = parameter.split('=');
      if (key?.trim().toLowerCase() === 'q') weight = Number.parseFloat(value?.trim() ?? '');
    }
    if (weight > 0) return true;
  }
  return false;
}
