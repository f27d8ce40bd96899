/** Option checks of the remote-call policies: the ones every resilience component shares. */
export {
  requireNonNegativeFinite,
  requireNonNegativeInteger,
  requirePositiveFinite,
  requirePositiveInteger,
  requireRatio,
} from '../option-checks.ts';
