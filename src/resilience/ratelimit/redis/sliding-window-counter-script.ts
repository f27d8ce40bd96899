/**
 * The sliding window counter step in Lua (see ../sliding-window-counter.ts, which this mirrors
 * operation for operation). Parameters: ARGV[4] limit, ARGV[5] windowMs. State: windowStart,
 * current, previous. Returns allowed, remaining, resetMs, retryAfterMs.
 */
import { luaPrelude } from './lua-prelude.ts';

export const slidingWindowCounterScript = `${luaPrelude}
local limit = tonumber(ARGV[4])
local windowMs = tonumber(ARGV[5])
local state = loadState()
local windowStart = math.floor(now / windowMs) * windowMs
local current = 0
local previous = 0
if state then
  if state[1] >= windowStart then
    windowStart = state[1]
    current = state[2]
    previous = state[3]
  elseif state[1] == windowStart - windowMs then
    previous = state[2]
  end
end
local elapsed = math.min(1, math.max(0, (now - windowStart) / windowMs))
local estimate = previous * (1 - elapsed) + current
local allowed = estimate + cost <= limit + EPSILON
if allowed then
  current = current + cost
  estimate = estimate + cost
end
local remaining = math.max(0, math.min(limit, math.floor(limit - estimate + EPSILON)))

-- Milliseconds until the estimate decays to target or below, with no new admissions.
local function timeUntilEstimateAtMost(target)
  if target < -EPSILON then return INFINITY end
  if current <= target + EPSILON then
    if previous <= 0 then return 0 end
    local fraction = 1 - (target - current) / previous
    return ceilMs(math.max(0, windowStart + fraction * windowMs - now))
  end
  local fraction = 1 - target / current
  return ceilMs(math.max(0, windowStart + windowMs + fraction * windowMs - now))
end

local resetMs = 0
if remaining < limit then resetMs = timeUntilEstimateAtMost(limit - remaining - 1) end
local retryAfterMs = 0
if not allowed then retryAfterMs = timeUntilEstimateAtMost(limit - cost) end
local expiresAt = now
if current > 0 then expiresAt = windowStart + 2 * windowMs elseif previous > 0 then expiresAt = windowStart + windowMs end
saveState({ windowStart, current, previous }, expiresAt)
return { allowed and '1' or '0', format(remaining), format(resetMs), format(retryAfterMs) }
`;
