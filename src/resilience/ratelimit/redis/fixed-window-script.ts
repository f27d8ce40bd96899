/**
 * The fixed window step in Lua (see ../fixed-window.ts, which this mirrors). Parameters: ARGV[4]
 * limit, ARGV[5] windowMs. State: windowStart, count. Returns allowed, remaining, resetMs,
 * retryAfterMs.
 */
import { luaPrelude } from './lua-prelude.ts';

export const fixedWindowScript = `${luaPrelude}
local limit = tonumber(ARGV[4])
local windowMs = tonumber(ARGV[5])
local state = loadState()
local windowStart = math.floor(now / windowMs) * windowMs
local count = 0
if state and state[1] >= windowStart then
  windowStart = state[1]
  count = state[2]
end
local windowEnd = windowStart + windowMs
local allowed = count + cost <= limit
if allowed then count = count + cost end
local untilWindowEnd = math.max(0, windowEnd - now)
local remaining = math.max(0, math.floor(limit - count))
local resetMs = untilWindowEnd
if remaining >= limit then resetMs = 0 end
local retryAfterMs = 0
if not allowed then
  if cost > limit then retryAfterMs = INFINITY else retryAfterMs = untilWindowEnd end
end
local expiresAt = now
if count > 0 then expiresAt = windowEnd end
saveState({ windowStart, count }, expiresAt)
return { allowed and '1' or '0', format(remaining), format(resetMs), format(retryAfterMs) }
`;
