/**
 * The leaky bucket step in Lua (see ../leaky-bucket.ts, which this mirrors operation for
 * operation). Parameters: ARGV[4] capacity, ARGV[5] drainPerSecond. State: level, updatedAt.
 * Returns allowed, remaining, resetMs, retryAfterMs, delayMs.
 */
import { luaPrelude } from './lua-prelude.ts';

export const leakyBucketScript = `${luaPrelude}
local capacity = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local state = loadState()
local level = 0
local updatedAt = now
if state then
  local elapsed = math.max(0, now - state[2])
  level = state[1] - (elapsed * rate) / 1000
  if level < EPSILON then level = 0 end
  updatedAt = math.max(now, state[2])
end
local allowed = level + cost <= capacity + EPSILON
local delayMs = 0
local retryAfterMs = 0
if allowed then
  delayMs = (level * 1000) / rate
  level = math.min(capacity, level + cost)
else
  if cost > capacity then retryAfterMs = INFINITY else retryAfterMs = ceilMs(((level + cost - capacity) * 1000) / rate) end
end
local free = capacity - level
local remaining = math.min(capacity, math.floor(free + EPSILON))
local resetMs = 0
if remaining < capacity then resetMs = ceilMs(((remaining + 1 - free) * 1000) / rate) end
saveState({ level, updatedAt }, updatedAt + ceilMs((level * 1000) / rate))
return { allowed and '1' or '0', format(remaining), format(resetMs), format(retryAfterMs), format(delayMs) }
`;
