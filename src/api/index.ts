export { Admission, type AdmissionOptions } from './admission.ts';
export { BlobStore } from './blobs.ts';
export { Completions } from './completions.ts';
export type { ApiDependencies } from './context.ts';
export { registerProblemHandlers, sendProblem, toPixelfleetError } from './problem.ts';
export { buildApiServer } from './server.ts';
