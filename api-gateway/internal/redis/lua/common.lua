-- Helpers prepended to every script (Redis has no script includes). The
-- scripts implement the auction rules of shared/models (rules.go) and the
-- event contract (event.go); the case table in shared/models/rulestest runs
-- against them in a real Redis, so keep the two in step. Amounts
-- are integer cents and times unix milliseconds; Lua numbers are doubles,
-- exact for integers below 2^53, far above any cents or millisecond value.

local function int(v)
  return string.format('%d', v)
end

local function money(c)
  return string.format('%d.%02d', math.floor(c / 100), c % 100)
end

-- civil converts days since 1970-01-01 to a proleptic Gregorian date
-- (Howard Hinnant's algorithm); Redis's Lua has no os.date.
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- rfc3339 formats unix seconds plus a fraction as UTC RFC 3339.
local function rfc3339(sec, frac)
  local days = math.floor(sec / 86400)
  local rem = sec - days * 86400
  local y, m, d = civil(days)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%sZ', y, m, d,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, frac)
end

local function rfc3339ms(ms)
  local sec = math.floor(ms / 1000)
  return rfc3339(sec, string.format('%03d', ms - sec * 1000))
end

-- status is the auction's status at now (models.StatusAt): the stored
-- status only records a close or a cancellation; start and end are compared
-- with the clock on every read.
local function status(st, sa, ea, now)
  if st == 'closed' or st == 'cancelled' then return st end
  if ea > 0 and now >= ea then return 'closed' end
  if sa > 0 and now < sa then return 'scheduled' end
  return 'active'
end

local function clock()
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  return sec * 1000 + math.floor(usec / 1000), rfc3339(sec, string.format('%06d', usec)), sec, usec
end

local function str(v)
  return cjson.encode(v)
end

-- instance is this Redis process's run id. It changes when Redis restarts
-- or a replica takes over: exactly when an item's state may have fallen
-- behind the events already published from it. Each item records (ep) the
-- instance under which it was last checked against the event log; a script
-- meeting another instance refuses to decide until the gateway has checked
-- the item again (restore.lua).
local function instance()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
end
