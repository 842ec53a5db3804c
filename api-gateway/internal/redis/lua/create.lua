-- Creates an item unless its id is taken.
-- KEYS[1] item hash; ARGV: id, name, starting price, increment, reserve,
-- starts at (ms, 0: now), ends at (ms, 0: never).
-- Returns {0} if it exists, else {1, starts at, status}.
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local now = clock()
local sa, ea = tonumber(ARGV[6]), tonumber(ARGV[7])
if sa == 0 then sa = now end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'sp', ARGV[3], 'inc', ARGV[4], 'res', ARGV[5],
  'sa', int(sa), 'ea', int(ea), 'st', 'open', 'cur', 0, 'bdr', '', 'cnt', 0, 'seq', 0)
return {1, sa, status('open', sa, ea, now)}
