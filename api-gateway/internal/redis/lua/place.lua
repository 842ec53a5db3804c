-- Decides a group of bids for one item, in order, atomically.
-- KEYS[1] item hash, KEYS[2] outbox stream, KEYS[3..] idempotency records,
-- each followed by its user's count of records on the item.
-- ARGV[1] item id, ARGV[2] idempotency ttl (ms), ARGV[3] deadline (unix ms,
-- 0: none), ARGV[4] how often soft close may move the end (0: no cap; the
-- item's ext counts the moves), ARGV[5] how many records one user may open
-- on the item within the records' lifetime (0: no cap), then 8 values per
-- bid:
-- idempotency key index into KEYS (0: none), request hash, user id,
-- amount (cents), bid id, event id, soft close (ms), maximum (1: the amount
-- is a maximum bid).
-- Returns {-1} past the deadline (nothing done), {-2} when the item was not
-- checked against the event log on this Redis instance (nothing done; see
-- instance), {0} for an unknown item,
-- else {1, name, sp, inc, res, sa, time sec, time usec, r1, r2, ...} where
-- each r is {outcome, replayed, cur, bidder, count, seq, ends, status,
-- outbox id, event json (replays only), then for new decisions the price
-- steps made: first step's previous bid, amount and auto (1/0), second
-- step's outbox id (''), bidder and amount, the leader's maximum, and the
-- first step's previous bidder (the leader before the bid)}.
-- Outcomes: 1 accepted, 2 too low, 4 not active, 5 idempotency conflict,
-- 6 placed but outbid by the leader's maximum, 7 too many idempotency
-- keys (nothing decided, no record) (the numbers of
-- models.Outcome). Each bid is decided as models.Decide decides it; the
-- leader's maximum (mx) never leaves Redis but in the outbox's m field,
-- which the relay logs beside the event, not in it.
local item, outbox = KEYS[1], KEYS[2]
local id, ttl, deadline, maxext = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local maxkeys = tonumber(ARGV[5])
local now, ts, sec, usec = clock()
-- A call that reaches Redis after its client has given up (a stalled
-- server, a retry of a timed-out call) must change nothing: the client
-- already answered 503, and a bid applied now would be a hidden acceptance.
if deadline > 0 and now > deadline then return {-1} end
if redis.call('EXISTS', item) == 0 then return {0} end
local f = redis.call('HMGET', item, 'name', 'sp', 'inc', 'res', 'sa', 'ea', 'st', 'cur', 'bdr', 'cnt', 'seq', 'ep', 'mx', 'ext')
if f[12] ~= instance() then return {-2} end
local sp, inc, res = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local sa, ea, st = tonumber(f[5]), tonumber(f[6]), f[7]
local cur, bdr, cnt, seq = tonumber(f[8]), f[9], tonumber(f[10]), tonumber(f[11])
local mx = tonumber(f[13]) or 0
local ext = tonumber(f[14]) or 0
local out = {1, f[1], sp, inc, res, sa, sec, usec}
local dirty = false
local n = (#ARGV - 5) / 8

-- lift raises a price set by a maximum m to the reserve m reaches.
local function lift(price, m)
  if price < res and m >= res then return res end
  return price
end

for i = 0, n - 1 do
  local b = 6 + i * 8
  local ki, h, user = tonumber(ARGV[b]), ARGV[b + 1], ARGV[b + 2]
  local amt, bid, eid, soft = tonumber(ARGV[b + 3]), ARGV[b + 4], ARGV[b + 5], tonumber(ARGV[b + 6])
  local maxbid = ARGV[b + 7] == '1'
  local r
  if ki > 0 then
    local rec = redis.call('HMGET', KEYS[ki], 'h', 'o', 'cur', 'bdr', 'cnt', 'seq', 'ea', 'st', 'oid', 'ev')
    if rec[1] then
      if rec[1] == h then
        r = {tonumber(rec[2]), 1, tonumber(rec[3]), rec[4], tonumber(rec[5]), tonumber(rec[6]), tonumber(rec[7]), rec[8], rec[9], rec[10], 0, 0, 0, '', '', 0, 0, ''}
      else
        r = {5, 0, cur, bdr, cnt, seq, ea, status(st, sa, ea, now), '', '', 0, 0, 0, '', '', 0, 0, ''}
      end
    else
      -- A new record: count it against the user's allowance on this item,
      -- which lasts as long as the first record does.
      local used = redis.call('INCR', KEYS[ki + 1])
      if used == 1 then redis.call('PEXPIRE', KEYS[ki + 1], ttl) end
      if maxkeys > 0 and used > maxkeys then
        r = {7, 0, cur, bdr, cnt, seq, ea, status(st, sa, ea, now), '', '', 0, 0, 0, '', '', 0, 0, ''}
      end
    end
  end
  if not r then
    local s = status(st, sa, ea, now)
    local o = 4
    -- steps are the price changes this bid makes: {bidder, price, auto,
    -- leader's maximum after}.
    local steps = {}
    if s == 'active' then
      o = 2
      local first = cnt == 0 or bdr == ''
      local min = sp
      if not first then min = cur + inc end
      if amt >= min and (first or amt > cur) then
        o = 1
        local top = math.max(mx, cur)
        if first then
          local price = amt
          if maxbid then price = lift(sp, amt) end
          steps[1] = {user, price, false, amt}
        elseif user == bdr and maxbid then
          if amt <= top then
            o = 2
          else
            mx = amt
            dirty = true
            local price = lift(cur, amt)
            if price ~= cur then steps[1] = {user, price, true, amt} end
          end
        elseif user == bdr then
          steps[1] = {user, amt, false, math.max(top, amt)}
        elseif amt > top then
          local price = amt
          if maxbid then price = lift(math.min(amt, top + inc), amt) end
          steps[1] = {user, price, false, amt}
        else
          o = 6
          steps[1] = {user, amt, false, amt}
          steps[2] = {bdr, lift(math.min(top, amt + inc), top), true, top}
        end
      end
    end
    if #steps > 0 and soft > 0 and ea > 0 and ea - now < soft and (maxext == 0 or ext < maxext) then
      ea = now + soft
      ext = ext + 1
    end
    local ends = ''
    if ea > 0 then ends = ',"ends_at":"' .. rfc3339ms(ea) .. '"' end
    local prev1, amt1, auto1, bdr1, ev = 0, 0, 0, '', ''
    local oids, user2, amt2 = {'', ''}, '', 0
    for k, p in ipairs(steps) do
      local prev, prevbdr = cur, bdr
      cur, bdr, mx, cnt, seq = p[2], p[1], p[4], cnt + 1, seq + 1
      local e_id, b_id, auto, led, answered = eid, bid, '', '', ''
      -- The automatic answer's ids derive from the bid's, so that both
      -- strategies name it alike without another argument.
      if k == 2 then e_id, b_id = eid .. '-auto', bid .. '-auto' end
      if p[3] then auto = ',"auto":true' end
      if prevbdr ~= '' then led = ',"previous_bidder_id":' .. str(prevbdr) end
      -- The leader's automatic bid answers the bid at once: the leader
      -- never lost the lead.
      if k == 1 and #steps == 2 then answered = ',"auto_answered":true' end
      local e = '{"type":"bid","event_id":' .. str(e_id) .. ',"item_id":' .. str(id) ..
        ',"bid_id":' .. str(b_id) .. ',"user_id":' .. str(p[1]) ..
        ',"amount":' .. money(p[2]) .. ',"previous_bid":' .. money(prev) ..
        ',"timestamp":"' .. ts .. '","seq":' .. int(seq) .. auto .. led .. answered .. ends ..
        ',"bid_count":' .. int(cnt) .. '}'
      oids[k] = redis.call('XADD', outbox, '*', 'e', e, 'm', int(mx))
      if k == 1 then
        prev1, amt1, bdr1, ev = prev, p[2], prevbdr, e
        if p[3] then auto1 = 1 end
      else
        user2, amt2 = p[1], p[2]
      end
      dirty = true
    end
    -- The caller builds the new events from its request and these
    -- numbers, so the reply leaves the JSON out.
    r = {o, 0, cur, bdr, cnt, seq, ea, s, oids[1], '', prev1, amt1, auto1, oids[2], user2, amt2, mx, bdr1}
    if ki > 0 then
      redis.call('HSET', KEYS[ki], 'h', h, 'o', o, 'cur', int(cur), 'bdr', bdr, 'cnt', int(cnt),
        'seq', int(seq), 'ea', int(ea), 'st', s, 'oid', oids[1], 'ev', ev)
      redis.call('PEXPIRE', KEYS[ki], ttl)
    end
  end
  out[#out + 1] = r
end
if dirty then
  redis.call('HSET', item, 'cur', int(cur), 'bdr', bdr, 'cnt', int(cnt), 'seq', int(seq), 'ea', int(ea), 'mx', int(mx), 'ext', int(ext))
end
return out
