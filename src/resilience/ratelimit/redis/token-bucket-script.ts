/**
 * The token bucket step in Lua (see ../token-bucket.ts, which this mirrors operation for
 * operation). Parameters: ARGV[4] capacity, ARGV[5] refillPerSecond. State: tokens, updatedAt.
 * Returns allowed, remaining, resetMs, retryAfterMs.
 */
import { luaPrelude } from './lua-prelude.ts';

export const tokenBucketScript = `${luaPrelude}
local capacity = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local state = loadState()
local tokens = capacity
local updatedAt = now
if state then
  local elapsed = math.max(0, now - state[2])
  tokens = state[1] + (elapsed * rate) / 1000
  if tokens > capacity - EPSILON then tokens = capacity end
  updatedAt = math.max(now, state[2])
end
local allowed = cost <= tokens + EPSILON
if allowed then tokens = math.max(0, tokens - cost) end
local retryAfterMs = 0
if not allowed then
  if cost > capacity then retryAfterMs = INFINITY else retryAfterMs = ceilMs(((cost - tokens) * 1000) / rate) end
end
local remaining = math.min(capacity, math.floor(tokens + EPSILON))
local resetMs = 0
if remaining < capacity then resetMs = ceilMs(((remaining + 1 - tokens) * 1000) / rate) end
saveState({ tokens, updatedAt }, updatedAt + ceilMs(((capacity - tokens) * 1000) / rate))
return { allowed and '1' or '0', format(remaining), format(resetMs), format(retryAfterMs) }
`;
