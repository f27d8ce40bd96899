/**
 * HTTP between cluster roles: the pooled, policy-wrapped internal client.
 */
export {
  type InternalAnswer,
  type InternalCall,
  InternalHttpClient,
  type InternalHttpClientOptions,
} from './internal-client.ts';
