-- Creates an item unless its id is taken.
-- KEYS[1] item hash; ARGV: id, name, starting price, increment, reserve,
-- starts at (ms, 0: now), ends at (ms, 0: never), deadline (ms, 0: none),
-- seller id ('' without authentication).
-- Returns {-1} past the deadline, {0} if it exists, else {1, starts at, status}.
local now = clock()
-- A late run, such as a retry of a call whose answer was lost, must not
-- create the item behind its caller's back (nor report it as taken).
local deadline = tonumber(ARGV[8])
if deadline > 0 and now > deadline then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local sa, ea = tonumber(ARGV[6]), tonumber(ARGV[7])
if sa == 0 then sa = now end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'sp', ARGV[3], 'inc', ARGV[4], 'res', ARGV[5],
  'sa', int(sa), 'ea', int(ea), 'st', 'open', 'cur', 0, 'bdr', '', 'cnt', 0, 'seq', 0, 'sel', ARGV[9],
  -- The end as created, which soft close never moves: the item's place in
  -- the open-auction listing.
  'oe', int(ea),
  -- A new item has no events yet: nothing to check it against.
  'ep', instance())
return {1, sa, status('open', sa, ea, now)}
