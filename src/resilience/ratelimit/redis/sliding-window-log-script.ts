/**
 * The sliding window log step in Lua on a sorted set (see ../sliding-window-log.ts for the
 * algorithm): one member per admitted request, scored by its admission time. ZREMRANGEBYSCORE
 * drops what slid out of the window, the remaining members are summed, ZADD logs an admission.
 *
 * Members must be unique, or two admissions in the same millisecond would collapse into one
 * (ZADD of an existing member only moves it): a member is `<time>:<n>:<cost>`, where n counts the
 * members already logged at that time. Members at one time are always removed together (by score
 * range), so n never repeats. The pure step merges same-time entries into one; that changes no
 * decision, because the time a refused request must wait for is the time of the entry whose
 * expiry frees enough, and same-time entries share it.
 *
 * Parameters: ARGV[4] limit, ARGV[5] windowMs. Returns allowed, remaining, resetMs, retryAfterMs.
 */
import { luaPrelude } from './lua-prelude.ts';

export const slidingWindowLogScript = `${luaPrelude}
local limit = tonumber(ARGV[4])
local windowMs = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', stateKey, '-inf', format(now - windowMs))
local logged = redis.call('ZRANGE', stateKey, 0, -1, 'WITHSCORES')
local timestamps = {}
local costs = {}
local total = 0
for index = 1, #logged, 2 do
  local entryCost = tonumber(string.match(logged[index], '([^:]+)$'))
  timestamps[#timestamps + 1] = tonumber(logged[index + 1])
  costs[#costs + 1] = entryCost
  total = total + entryCost
end
local allowed = total + cost <= limit
local kept = #timestamps
local at = now
-- A clock that steps backwards must not log out of order; record at the newest time seen.
if kept > 0 then at = math.max(now, timestamps[kept]) end
if allowed and cost > 0 then
  local sameTime = 0
  for index = kept, 1, -1 do
    if timestamps[index] ~= at then break end
    sameTime = sameTime + 1
  end
  redis.call('ZADD', stateKey, format(at), format(at) .. ':' .. sameTime .. ':' .. format(cost))
  timestamps[kept + 1] = at
  costs[kept + 1] = cost
  total = total + cost
end
local remaining = math.max(0, math.floor(limit - total))
local resetMs = 0
if remaining < limit and #timestamps > 0 then resetMs = math.max(0, timestamps[1] + windowMs - now) end
local retryAfterMs = 0
if not allowed then
  if cost > limit then
    retryAfterMs = INFINITY
  else
    -- Wait until enough of the oldest entries slide out of the window to make room.
    local freed = 0
    local index = 0
    while total - freed + cost > limit and index < #costs do
      index = index + 1
      freed = freed + costs[index]
    end
    retryAfterMs = math.max(0, timestamps[index] + windowMs - now)
  end
end
if #timestamps > 0 then
  applyExpiry(timestamps[#timestamps] + windowMs)
end
return { allowed and '1' or '0', format(remaining), format(resetMs), format(retryAfterMs) }
`;
