-- Decides a group of bids for one item, in order, atomically.
-- KEYS[1] item hash, KEYS[2] outbox stream, KEYS[3..] idempotency records.
-- ARGV[1] item id, ARGV[2] idempotency ttl (ms), ARGV[3] deadline (unix ms,
-- 0: none), then 7 values per bid:
-- idempotency key index into KEYS (0: none), request hash, user id,
-- amount (cents), bid id, event id, soft close (ms).
-- Returns {-1} past the deadline (nothing done), {-2} when the item was not
-- checked against the event log on this Redis instance (nothing done; see
-- instance), {0} for an unknown item,
-- else {1, name, sp, inc, res, sa, time sec, time usec, r1, r2, ...} where
-- each r is {outcome, replayed, cur, bidder, count, seq, ends, status,
-- outbox id, event json (replays only), previous bid (new acceptances)}.
-- Outcomes: 1 accepted, 2 too low, 4 not active, 5 idempotency conflict
-- (the numbers of models.Outcome). Each bid is decided as models.Decide
-- decides it.
local item, outbox = KEYS[1], KEYS[2]
local id, ttl, deadline = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, ts, sec, usec = clock()
-- A call that reaches Redis after its client has given up (a stalled
-- server, a retry of a timed-out call) must change nothing: the client
-- already answered 503, and a bid applied now would be a hidden acceptance.
if deadline > 0 and now > deadline then return {-1} end
if redis.call('EXISTS', item) == 0 then return {0} end
local f = redis.call('HMGET', item, 'name', 'sp', 'inc', 'res', 'sa', 'ea', 'st', 'cur', 'bdr', 'cnt', 'seq', 'ep')
if f[12] ~= instance() then return {-2} end
local sp, inc, res = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local sa, ea, st = tonumber(f[5]), tonumber(f[6]), f[7]
local cur, bdr, cnt, seq = tonumber(f[8]), f[9], tonumber(f[10]), tonumber(f[11])
local out = {1, f[1], sp, inc, res, sa, sec, usec}
local dirty = false
local n = (#ARGV - 3) / 7
for i = 0, n - 1 do
  local b = 4 + i * 7
  local ki, h, user = tonumber(ARGV[b]), ARGV[b + 1], ARGV[b + 2]
  local amt, bid, eid, soft = tonumber(ARGV[b + 3]), ARGV[b + 4], ARGV[b + 5], tonumber(ARGV[b + 6])
  local r
  if ki > 0 then
    local rec = redis.call('HMGET', KEYS[ki], 'h', 'o', 'cur', 'bdr', 'cnt', 'seq', 'ea', 'st', 'oid', 'ev')
    if rec[1] then
      if rec[1] == h then
        r = {tonumber(rec[2]), 1, tonumber(rec[3]), rec[4], tonumber(rec[5]), tonumber(rec[6]), tonumber(rec[7]), rec[8], rec[9], rec[10], 0}
      else
        r = {5, 0, cur, bdr, cnt, seq, ea, status(st, sa, ea, now), '', '', 0}
      end
    end
  end
  if not r then
    local s = status(st, sa, ea, now)
    local o, oid, ev, prev = 4, '', '', 0
    if s == 'active' then
      o = 2
      local min = sp
      if cnt > 0 and bdr ~= '' then min = cur + inc end
      if amt >= min and (cnt == 0 or amt > cur) then
        o = 1
        prev = cur
        cur, bdr, cnt, seq = amt, user, cnt + 1, seq + 1
        if soft > 0 and ea > 0 and ea - now < soft then ea = now + soft end
        local ends = ''
        if ea > 0 then ends = ',"ends_at":"' .. rfc3339ms(ea) .. '"' end
        ev = '{"type":"bid","event_id":' .. str(eid) .. ',"item_id":' .. str(id) ..
          ',"bid_id":' .. str(bid) .. ',"user_id":' .. str(user) ..
          ',"amount":' .. money(amt) .. ',"previous_bid":' .. money(prev) ..
          ',"timestamp":"' .. ts .. '","seq":' .. int(seq) .. ends ..
          ',"bid_count":' .. int(cnt) .. '}'
        oid = redis.call('XADD', outbox, '*', 'e', ev)
        dirty = true
      end
    end
    -- The caller builds a new event from its request and these numbers,
    -- so the reply leaves the JSON out.
    r = {o, 0, cur, bdr, cnt, seq, ea, s, oid, '', prev}
    if ki > 0 then
      redis.call('HSET', KEYS[ki], 'h', h, 'o', o, 'cur', int(cur), 'bdr', bdr, 'cnt', int(cnt),
        'seq', int(seq), 'ea', int(ea), 'st', s, 'oid', oid, 'ev', ev)
      redis.call('PEXPIRE', KEYS[ki], ttl)
    end
  end
  out[#out + 1] = r
end
if dirty then
  redis.call('HSET', item, 'cur', int(cur), 'bdr', bdr, 'cnt', int(cnt), 'seq', int(seq), 'ea', int(ea))
end
return out
