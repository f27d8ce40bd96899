/**
 * The one table of Pixelfleet error codes. Every failure a user can see has a stable
 * `PF_ERR_*` code, an HTTP status and a message that says what to do about it. Codes are
 * never renamed or reused; add new ones at the end of their group.
 */
export const errorCodes = {
  // Request and options (400)
  PF_ERR_UNKNOWN_OPTION: { status: 400, title: 'Unknown option' },
  PF_ERR_INVALID_OPTION: { status: 400, title: 'Invalid option value' },
  PF_ERR_CONFLICTING_OPTIONS: { status: 400, title: 'Options contradict each other' },
  PF_ERR_OUTPUT_TOO_LARGE: { status: 400, title: 'Requested output dimensions exceed the limit' },
  PF_ERR_EMPTY_BODY: { status: 400, title: 'Request body is empty' },
  PF_ERR_BAD_REQUEST: { status: 400, title: 'Malformed request' },
  // Input images (413, 415, 422)
  PF_ERR_BODY_TOO_LARGE: { status: 413, title: 'Request body exceeds the size limit' },
  PF_ERR_UNSUPPORTED_FORMAT: { status: 415, title: 'Input format is not supported' },
  PF_ERR_TOO_MANY_PIXELS: { status: 422, title: 'Input image has too many pixels' },
  PF_ERR_TOO_MANY_FRAMES: { status: 422, title: 'Animated input has too many frames' },
  PF_ERR_CORRUPT_IMAGE: { status: 422, title: 'Input image is truncated or corrupt' },
  PF_ERR_CONVERSION_FAILED: { status: 422, title: 'The image could not be converted' },
  PF_ERR_POISON_INPUT: { status: 422, title: 'Input repeatedly crashed or stalled the converter' },
  // Jobs (404, 409, 410)
  PF_ERR_NOT_FOUND: { status: 404, title: 'No such resource' },
  PF_ERR_JOB_NOT_FOUND: { status: 404, title: 'No such job' },
  PF_ERR_JOB_NOT_FINISHED: { status: 409, title: 'The job has not finished yet' },
  PF_ERR_JOB_FAILED: { status: 409, title: 'The job failed; it has no result' },
  PF_ERR_RESULT_EXPIRED: { status: 410, title: 'The job result has expired' },
  PF_ERR_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  PF_ERR_NOT_ACCEPTABLE: { status: 406, title: 'No acceptable output format' },
  // Overload and availability (503, 504)
  PF_ERR_OVERLOADED: { status: 503, title: 'Too many requests in flight; retry later' },
  PF_ERR_QUEUE_FULL: { status: 503, title: 'The job queue is above its high-water mark; retry later' },
  PF_ERR_SHUTTING_DOWN: { status: 503, title: 'The server is shutting down' },
  PF_ERR_QUEUE_UNAVAILABLE: { status: 503, title: 'The job queue is unavailable' },
  PF_ERR_DEADLINE_EXCEEDED: {
    status: 504,
    title: 'The request deadline passed before the image was converted',
  },
  PF_ERR_PROCESSING_TIMEOUT: { status: 504, title: 'The conversion exceeded its time limit' },
  // Queue semantics (internal callers; surfaced as 409/503 when they reach HTTP)
  PF_ERR_LEASE_LOST: { status: 409, title: 'The job lease is no longer held by this consumer' },
  PF_ERR_QUEUE_CLOSED: { status: 503, title: 'The queue is closed' },
  PF_ERR_NOT_LEADER: { status: 503, title: 'This queue node is not the leader' },
  // Cluster transport (internal: node-to-node links)
  PF_ERR_TRANSPORT_UNAVAILABLE: { status: 503, title: 'The cluster transport could not listen or is closed' },
  // Identity: authentication, authorisation and the management plane (401, 403, 409, 429, 501, 503)
  PF_ERR_UNAUTHORIZED: { status: 401, title: 'Missing or invalid API key' },
  PF_ERR_FORBIDDEN: { status: 403, title: 'The API key lacks the scope this request needs' },
  PF_ERR_ACCOUNT_CLOSED: { status: 403, title: 'The account is closed' },
  PF_ERR_ADMIN_UNAUTHORIZED: { status: 401, title: 'Missing or invalid admin token' },
  PF_ERR_CONFLICT: { status: 409, title: 'The request conflicts with the current state' },
  PF_ERR_KEY_LIMIT_REACHED: {
    status: 409,
    title: 'The account already has the maximum number of live keys; revoke one first',
  },
  PF_ERR_AUTH_LOCKED_OUT: { status: 429, title: 'Too many failed authentication attempts; retry later' },
  PF_ERR_USAGE_NOT_CONFIGURED: { status: 501, title: 'Usage reporting is not wired into this server' },
  PF_ERR_MANAGEMENT_UNAVAILABLE: { status: 503, title: 'The identity store is unavailable' },
  // Consensus core (internal: the Raft state machine and its simulator)
  PF_ERR_PROPOSAL_DROPPED: { status: 503, title: 'The proposal was not accepted by Raft; retry later' },
  PF_ERR_RAFT_STATE_CORRUPT: { status: 500, title: 'Persisted Raft state is inconsistent' },
  PF_ERR_CONSENSUS_INVARIANT: { status: 500, title: 'A Raft safety or liveness property was violated' },
  // Rate limits (429)
  PF_ERR_RATE_LIMITED: {
    status: 429,
    title: 'Rate limit exceeded; retry after the Retry-After delay (see the RateLimit header)',
  },
  // Configuration (start-up; never over HTTP)
  PF_ERR_CONFIG: { status: 500, title: 'Invalid configuration' },
  // Storage (local disk: logs, snapshots)
  PF_ERR_STORAGE_CORRUPT: {
    status: 500,
    title: 'Stored data is corrupt; see the message for the file and offset',
  },
  PF_ERR_STORAGE_LOCKED: { status: 500, title: 'The data directory is in use by another process' },
  PF_ERR_STORAGE_UNAVAILABLE: { status: 503, title: 'The storage is closed or failed a disk write' },
  // Usage metering (queries over HTTP; records from internal callers)
  PF_ERR_INVALID_QUERY: { status: 400, title: 'Invalid query parameters' },
  PF_ERR_INVALID_USAGE_RECORD: { status: 500, title: 'A usage record is malformed; it was not recorded' },
  // Everything else
  PF_ERR_INTERNAL: { status: 500, title: 'Internal error' },
  PF_ERR_WORKER_CRASHED: { status: 500, title: 'The conversion process crashed; the job may be retried' },
  // Idempotency keys (400, 409, 422)
  PF_ERR_INVALID_IDEMPOTENCY_KEY: {
    status: 400,
    title: 'The Idempotency-Key header must be 1 to 255 printable ASCII characters',
  },
  PF_ERR_IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'The Idempotency-Key was already used with different request parameters; use a new key',
  },
  PF_ERR_IDEMPOTENCY_IN_PROGRESS: {
    status: 409,
    title: 'A request with this Idempotency-Key is still in progress; retry after it finishes',
  },
  // Tenancy limits (413, 429)
  PF_ERR_QUOTA_EXCEEDED: { status: 429, title: "The account's monthly conversion quota is used up" },
  PF_ERR_CONCURRENCY_LIMITED: { status: 429, title: 'Too many requests of this key are in progress at once' },
  PF_ERR_ACCOUNT_BACKLOG_FULL: { status: 429, title: 'This account has too many queued and running jobs' },
  PF_ERR_TIER_BODY_TOO_LARGE: { status: 413, title: "The request body exceeds the tier's input size limit" },
  // Remote calls between cluster roles (resilience kit) and discovery (401, 502, 503, 504)
  PF_ERR_CIRCUIT_OPEN: { status: 503, title: 'The circuit breaker for this dependency is open; retry later' },
  PF_ERR_BULKHEAD_FULL: {
    status: 503,
    title: 'Too many calls to this dependency are in progress; retry later',
  },
  PF_ERR_REMOTE_TIMEOUT: { status: 504, title: 'A call to a cluster dependency timed out' },
  PF_ERR_REMOTE_FAILED: { status: 502, title: 'A cluster dependency failed or answered with an error' },
  PF_ERR_CLUSTER_UNAUTHORIZED: { status: 401, title: 'Missing or invalid cluster secret' },
  PF_ERR_INPUT_GONE: {
    status: 410,
    title: 'The job input is no longer held by the api server that took the request',
  },
  // Gateway (502, 503, 504): errors the load balancer makes itself
  PF_ERR_UPSTREAM_FAILED: { status: 502, title: 'The upstream server failed or closed the connection' },
  PF_ERR_NO_UPSTREAM: { status: 503, title: 'No upstream server is available; retry later' },
  PF_ERR_UPSTREAM_TIMEOUT: { status: 504, title: 'The upstream server did not answer before the deadline' },
  // Existing engines (Redis: cluster-wide rate limits and idempotency keys)
  PF_ERR_REDIS_UNAVAILABLE: { status: 503, title: 'Redis is unreachable or failed the command; retry later' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCodes;
