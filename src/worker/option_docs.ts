/**
 * The resize options as data: one entry per query parameter, in the order the README's API table
 * lists them. `parseResizeOptions` takes its set of known parameter names from this list, so an
 * option cannot be accepted without being documented.
 */

export interface ResizeOptionDoc {
  /** Query parameter name (case-sensitive). */
  readonly name: string;
  /** Kind of value: 'integer', 'number', 'boolean', 'enum', 'colour' or 'boolean | number'. */
  readonly type: string;
  /** Value when the parameter is absent, as a user would write it; '—' when there is none. */
  readonly default: string;
  /** Accepted values, human-readable. */
  readonly allowed: string;
  /** What the option does and when it conflicts with others. */
  readonly description: string;
}

export const resizeOptionDocs: readonly ResizeOptionDoc[] = [
  {
    name: 'width',
    type: 'integer',
    default: '—',
    allowed: '1 … maxOutputDimension (after × dpr)',
    description:
      'Output width in CSS pixels. With only width, the height follows the aspect ratio. ' +
      'width × dpr above the output cap fails with PF_ERR_OUTPUT_TOO_LARGE. With neither width ' +
      'nor height the image keeps its size: a re-encode that still strips metadata, applies ' +
      'the orientation and converts the format.',
  },
  {
    name: 'height',
    type: 'integer',
    default: '—',
    allowed: '1 … maxOutputDimension (after × dpr)',
    description:
      'Output height in CSS pixels. With only height, the width follows the aspect ratio. ' +
      'height × dpr above the output cap fails with PF_ERR_OUTPUT_TOO_LARGE.',
  },
  {
    name: 'fit',
    type: 'enum',
    default: 'cover',
    allowed: 'cover | contain | fill | inside | outside',
    description:
      'How the image meets a width × height box: cover fills the box exactly and crops the ' +
      'overflow; contain fits the whole image and pads to the exact box with `background`; fill ' +
      'stretches to the box ignoring the aspect ratio; inside fits within the box (no padding); ' +
      'outside covers the box without cropping. Only matters when both width and height are given.',
  },
  {
    name: 'position',
    type: 'enum',
    default: 'center',
    allowed:
      'center | top | right | bottom | left | top-right | top-left | bottom-right | bottom-left ' +
      '(aliases: centre, north, east, south, west, northeast, northwest, southeast, southwest) | ' +
      'attention | entropy',
    description:
      'Which part of the image to keep when cover crops, or where contain places the image in ' +
      'its padding. attention (most salient region) and entropy (most detail) are smart crops ' +
      'for cover only, and not for animated output. Any position with fit fill, inside or ' +
      'outside is PF_ERR_CONFLICTING_OPTIONS.',
  },
  {
    name: 'format',
    type: 'enum',
    default: 'the input format',
    allowed: 'jpeg (alias jpg) | png | webp | avif | gif | auto',
    description:
      'Output format. Absent keeps the input format (HEIF and TIFF inputs become JPEG, SVG ' +
      'becomes PNG). auto picks from the Accept header: webp if accepted, ' +
      'else avif if accepted, else jpeg (with animated: webp if accepted, else gif); the ' +
      'response then varies on Accept.',
  },
  {
    name: 'quality',
    type: 'integer',
    default: 'jpeg 80, webp 80, avif 50',
    allowed: '1 … 100 (or the account tier maximum)',
    description:
      'Encoder quality for lossy formats. Conflicts with format png or gif and with lossless. ' +
      'Ignored when format is absent and the input format is lossless (png, gif).',
  },
  {
    name: 'background',
    type: 'colour',
    default: 'transparent where the format has alpha, white for jpeg',
    allowed:
      'hex rgb, rgba, rrggbb or rrggbbaa, with or without a leading # (%23); or black, white, ' +
      'transparent, gray, grey, red, green, blue',
    description:
      'Padding colour for fit=contain, and the matte that transparent pixels are flattened onto ' +
      'when the output is JPEG.',
  },
  {
    name: 'blur',
    type: 'number',
    default: 'off',
    allowed: '0.3 … 1000 (Gaussian sigma)',
    description: 'Gaussian blur applied after resizing; larger sigma blurs more and costs more CPU.',
  },
  {
    name: 'sharpen',
    type: 'boolean | number',
    default: 'false',
    allowed: 'true | false | 1 | 0 | a sigma 0.01 … 10 (write 1.0 for sigma 1)',
    description: 'Sharpen after resizing: true is a mild fast sharpen, a number sharpens with that sigma.',
  },
  {
    name: 'dpr',
    type: 'number',
    default: '1',
    allowed: '1 … 5 (decimals allowed)',
    description:
      'Device pixel ratio: multiplies width and height (rounded) so one URL serves retina ' +
      'screens. Needs width or height (PF_ERR_CONFLICTING_OPTIONS otherwise).',
  },
  {
    name: 'enlarge',
    type: 'boolean',
    default: 'false',
    allowed: 'true | false | 1 | 0',
    description:
      'Allow upscaling past the input dimensions. When false, pixels are never scaled up: ' +
      'cover, fill, inside and outside return at most the input size along each axis (cover ' +
      'still crops an axis where the input is larger), while contain still pads the unscaled ' +
      'image to the exact box.',
  },
  {
    name: 'strip',
    type: 'boolean',
    default: 'true',
    allowed: 'true | false | 1 | 0',
    description:
      'Remove EXIF, XMP, IPTC and ICC metadata (pixels are converted to sRGB). false keeps ' +
      'them; the orientation tag is still reset when autoOrient applied it.',
  },
  {
    name: 'autoOrient',
    type: 'boolean',
    default: 'true',
    allowed: 'true | false | 1 | 0',
    description: 'Rotate and flip the pixels according to the EXIF orientation tag before resizing.',
  },
  {
    name: 'progressive',
    type: 'boolean',
    default: 'false',
    allowed: 'true | false | 1 | 0',
    description:
      'Progressive JPEG, interlaced PNG or GIF. Conflicts with format webp and avif; ignored ' +
      'when format is absent and the input is webp or avif.',
  },
  {
    name: 'lossless',
    type: 'boolean',
    default: 'false',
    allowed: 'true | false | 1 | 0',
    description:
      'Lossless WebP or AVIF. Needs format=webp, format=avif or format=auto (which then picks ' +
      'only webp or avif, or fails with PF_ERR_NOT_ACCEPTABLE when Accept allows neither).',
  },
  {
    name: 'animated',
    type: 'boolean',
    default: 'false',
    allowed: 'true | false | 1 | 0',
    description:
      'Keep every frame of an animated GIF or WebP (up to the frame limit, else ' +
      'PF_ERR_TOO_MANY_FRAMES); false converts the first frame only. Conflicts with format ' +
      'jpeg, png and avif, and with the attention and entropy positions.',
  },
];
