/**
 * Lua shared by every limiter script: the clock, exact number formatting, and the state
 * load/save with expiry. Each script is this prelude followed by one algorithm's step, a line for
 * line port of the pure TypeScript step in the parent folder, so both compute the same doubles.
 *
 * Calling convention (every limiter script):
 *   KEYS[1]  the state key `<prefix>:<policy>:<key>`
 *   ARGV[1]  now in epoch ms, or '' to read Redis `TIME` (every api server then shares one clock)
 *   ARGV[2]  extra key lifetime in ms past the step's expiresAt, used only with a given clock
 *            (its time need not match the server's, so PEXPIREAT would be meaningless)
 *   ARGV[3]  cost
 *   ARGV[4…] the algorithm's parameters, in the order its script documents
 *
 * Numbers cross the boundary as strings ('%.17g' round-trips a double exactly; Redis would
 * truncate a Lua number reply to an integer), and state is one string of space-separated numbers
 * ending with its expiresAt, so a state past its expiry reads as absent even under a test clock.
 */
export const luaPrelude = `
local EPSILON = 1e-9
local INFINITY = math.huge
local stateKey = KEYS[1]
local givenNow = ARGV[1]
local slackMs = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local now
if givenNow == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now = tonumber(givenNow)
end

local function format(value)
  if value == INFINITY then return 'Infinity' end
  -- Normalises -0, which JavaScript's Math.max never returns where Lua's math.max might.
  if value == 0 then return '0' end
  return string.format('%.17g', value)
end

local function ceilMs(value)
  if value == INFINITY then return value end
  return math.max(0, math.ceil(value - EPSILON))
end

local function loadState()
  local stored = redis.call('GET', stateKey)
  if not stored then return nil end
  local fields = {}
  for field in string.gmatch(stored, '%S+') do fields[#fields + 1] = tonumber(field) end
  -- The last field is the state's expiresAt: at or past it the state is as good as absent.
  if fields[#fields] <= now then return nil end
  return fields
end

local function applyExpiry(expiresAt)
  if givenNow == '' then
    redis.call('PEXPIREAT', stateKey, string.format('%.0f', math.ceil(expiresAt)))
  else
    redis.call('PEXPIRE', stateKey, string.format('%.0f', math.ceil(expiresAt - now + slackMs)))
  end
end

local function saveState(fields, expiresAt)
  if expiresAt <= now then
    -- Indistinguishable from a fresh key: hold nothing.
    redis.call('DEL', stateKey)
    return
  end
  local parts = {}
  for index = 1, #fields do parts[index] = format(fields[index]) end
  parts[#parts + 1] = format(expiresAt)
  local value = table.concat(parts, ' ')
  if givenNow == '' then
    redis.call('SET', stateKey, value, 'PXAT', string.format('%.0f', math.ceil(expiresAt)))
  else
    redis.call('SET', stateKey, value, 'PX', string.format('%.0f', math.ceil(expiresAt - now + slackMs)))
  end
end
`;
