/**
 * The worker role's conversion engine: option parsing (pure), input inspection (header only),
 * the sharp pipeline, and the pool of isolated child processes that runs it. The dispatcher
 * (claim loop) lives beside it in `dispatcher.ts`.
 */
export { acceptsMediaType } from './accept.ts';
export { parseColour } from './colour.ts';
export {
  classifySharpError,
  isRetryableConversionError,
} from './conversion_errors.ts';
export {
  defaultAllowedInputFormats,
  type InspectionLimits,
  inputMimeTypes,
  inspectInput,
  sniffFormat,
} from './inspect.ts';
export {
  parseResizeOptions,
  type ResizeOptionContext,
  type ResizeOptionDoc,
  type ResizeQuery,
  resizeOptionDocs,
} from './options.ts';
export { type OutputBounds, planOutputBounds } from './output_size.ts';
export { convertImage, outputContentTypes, outputFormatForInput } from './pipeline.ts';
export {
  type ConvertCallOptions,
  WorkerPool,
  type WorkerPoolEvent,
  type WorkerPoolOptions,
  type WorkerPoolStats,
  type WorkerRestartReason,
} from './pool.ts';
export type {
  ConversionLimits,
  ConversionResult,
  ConvertedImage,
  CropStrategy,
  Fit,
  Gravity,
  InputFormat,
  InputInspection,
  OutputFormat,
  Position,
  ResizeOptions,
  Rgba,
} from './types.ts';
