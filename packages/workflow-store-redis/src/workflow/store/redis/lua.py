"""The Lua scripts: one per state transition, so each transition is atomic.

Conventions (see :mod:`workflow.store.redis.keys` for the layout):

* ``ARGV[1]`` is the key prefix; per-run scripts take the run id's hex as ``ARGV[2]``
  and declare the run's hash as ``KEYS[1]``.
* Times arrive as decimal strings and are stored as given: Lua numbers are doubles
  and would print large values in exponent form, so scripts never format a time
  they computed. Times are exact in a double (``MAX_MS`` < 2**53), so comparing them
  with ``tonumber`` is exact.
* An empty string argument means "absent" (no valid id, time or JSON text is empty).
* Run fields: ``id wf ver status input output error w_kind w_step w_key w_wake w_meta
  l_owner l_token l_exp token next created updated ready cm``; an absent field is
  ``None``. ``token`` is the last token handed out, ``cm`` the list-order member.
* Inbox fields are ``"<kind>:<key>"``; a record is the JSON array
  ``[name, step_id, payload_text, meta_text, received_at]``.
* :func:`sync` derives every index membership from the run's fields after each
  change, so an index can never disagree with the run it points at.
"""

from __future__ import annotations

PRELUDE = r"""
local P = ARGV[1]
local function rk(h) return P .. '{wf:' .. h .. '}' end
local function gk(name) return P .. '{g}:' .. name end
local function hex(s)
  return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
end
local TERMINAL = {finished = true, errored = true, cancelled = true}
local WAIT_FIELDS = {'w_kind', 'w_step', 'w_key', 'w_wake', 'w_meta'}
local LEASE_FIELDS = {'l_owner', 'l_token', 'l_exp'}

local function sync(h)
  local f = redis.call('HMGET', rk(h) .. ':run', 'status', 'ready', 'l_exp', 'w_wake', 'updated')
  local s = f[1]
  if s == 'queued' then redis.call('ZADD', gk('queued'), f[2], h)
  else redis.call('ZREM', gk('queued'), h) end
  if s == 'running' then redis.call('ZADD', gk('leases'), f[3], h)
  else redis.call('ZREM', gk('leases'), h) end
  if s == 'paused' and f[4] then redis.call('ZADD', gk('timers'), f[4], h)
  else redis.call('ZREM', gk('timers'), h) end
  if TERMINAL[s] then redis.call('ZADD', gk('terminal'), f[5], h)
  else redis.call('ZREM', gk('terminal'), h) end
end

local function run_of(h) return redis.call('HGETALL', rk(h) .. ':run') end

-- Whether an index member's run still exists. One that does not (evicted, or deleted
-- by hand) is dropped from the indexes, so it can never stall the many-run scripts.
local function alive(h)
  if redis.call('EXISTS', rk(h) .. ':run') == 1 then return true end
  sync(h)
  return false
end

local function inbox_of(h)
  return {redis.call('HGETALL', rk(h) .. ':inbox'), redis.call('SMEMBERS', rk(h) .. ':consumed')}
end

local function make_queued(h, now)
  local k = rk(h) .. ':run'
  redis.call('HSET', k, 'status', 'queued', 'ready', now, 'updated', now)
  redis.call('HDEL', k, unpack(WAIT_FIELDS))
end

-- Whether inbox entry (field, record) satisfies the wait (the rule of Wait.matches).
local function matches(wkind, wstep, wkey, wwake, field, record)
  local kind, key = string.match(field, '^(%a+):(.*)$')
  if kind == 'timer' then return (wwake and key == wstep) and true or false end
  if kind == 'signal' then
    if wkind ~= 'signal' then return false end
    local e = cjson.decode(record)
    return e[1] == wkey and (e[2] == cjson.null or e[2] == wstep)
  end
  return wkind == 'approval' and key == wkey
end

-- nil when the lease (owner, token) is the run's current one, else the reason.
local function lease_problem(h, owner, token)
  local f = redis.call('HMGET', rk(h) .. ':run', 'status', 'l_owner', 'l_token')
  if not f[1] then return 'gone' end
  if f[1] == 'cancelled' then return 'cancelled' end
  if f[2] ~= owner or f[3] ~= token then return 'lost' end
  return nil
end

-- Appends ARGV[i+3 ..] events and consumes refs; ARGV[i] = expected, ARGV[i+1] = now
-- (unused: records carry their time), ARGV[i+2] = event count, then the events, then
-- the consume count and the inbox fields. Returns (next ARGV index, next index) or
-- (nil, current index) on a log conflict.
local function append(h, i)
  local k = rk(h)
  local expected = tonumber(ARGV[i])
  local n = tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', k .. ':run', 'next'))
  if current ~= expected then return nil, current end
  local j = i + 3
  while j < i + 3 + n do
    local last = math.min(j + 999, i + 2 + n)
    redis.call('RPUSH', k .. ':events', unpack(ARGV, j, last))
    j = last + 1
  end
  if n > 0 then redis.call('HINCRBY', k .. ':run', 'next', n) end
  local c = tonumber(ARGV[j])
  for m = j + 1, j + c do
    if redis.call('HEXISTS', k .. ':inbox', ARGV[m]) == 1 then
      redis.call('SADD', k .. ':consumed', ARGV[m])
    end
  end
  return j + c + 1, current + n
end

local function claimable(h, now)
  local f = redis.call('HMGET', rk(h) .. ':run', 'status', 'l_exp')
  if f[1] == 'queued' then return true end
  return f[1] == 'running' and f[2] and tonumber(f[2]) <= tonumber(now) or false
end

local function claim(h, owner, expires, now, history)
  local k = rk(h) .. ':run'
  local token = redis.call('HINCRBY', k, 'token', 1)
  if redis.call('HGET', k, 'status') ~= 'running' then
    redis.call('HSET', k, 'status', 'running', 'updated', now)
  end
  redis.call('HSET', k, 'l_owner', owner, 'l_token', token, 'l_exp', expires)
  sync(h)
  local events = {}
  if history == '1' then events = redis.call('LRANGE', rk(h) .. ':events', 0, -1) end
  return {run_of(h), inbox_of(h), events}
end

-- Writes a new queued run (the caller checked that it does not exist).
local function create_run(h, id, wf, ver, input, now, cm, wfh)
  local k = rk(h) .. ':run'
  redis.call('HSET', k, 'id', id, 'wf', wf, 'status', 'queued', 'next', 0, 'token', 0,
    'created', now, 'updated', now, 'ready', now, 'cm', cm)
  if ver ~= '' then redis.call('HSET', k, 'ver', ver) end
  if input ~= '' then redis.call('HSET', k, 'input', input) end
  redis.call('ZADD', gk('created'), 0, cm)
  redis.call('ZADD', gk('created:' .. wfh), 0, cm)
  sync(h)
end

local function delete_run(h)
  local k = rk(h)
  local f = redis.call('HMGET', k .. ':run', 'wf', 'cm')
  if not f[1] then return 0 end
  redis.call('ZREM', gk('created'), f[2])
  redis.call('ZREM', gk('created:' .. hex(f[1])), f[2])
  for _, name in ipairs({'queued', 'leases', 'timers', 'terminal'}) do
    redis.call('ZREM', gk(name), h)
  end
  redis.call('DEL', k .. ':run', k .. ':events', k .. ':inbox', k .. ':consumed')
  return 1
end
"""

CREATE_RUN = r"""
-- ARGV: P, h, run_id, workflow_id, version, input, now, created member, workflow hex
local h = ARGV[2]
if redis.call('EXISTS', rk(h) .. ':run') == 1 then return {'existing', run_of(h)} end
create_run(h, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return {'created', run_of(h)}
"""

CANCEL_RUN = r"""
-- ARGV: P, h, error, now
local h = ARGV[2]
local k = rk(h) .. ':run'
local status = redis.call('HGET', k, 'status')
if not status then return {'notfound'} end
if TERMINAL[status] then return {'terminal', run_of(h)} end
redis.call('HSET', k, 'status', 'cancelled', 'error', ARGV[3], 'updated', ARGV[4])
redis.call('HDEL', k, 'ready', unpack(WAIT_FIELDS))
redis.call('HDEL', k, unpack(LEASE_FIELDS))
sync(h)
return {'cancelled', run_of(h)}
"""

DELETE_RUN = r"""
-- ARGV: P, h
return delete_run(ARGV[2])
"""

PURGE_RUNS = r"""
-- ARGV: P, terminal_before, limit
local doomed = redis.call('ZRANGEBYSCORE', gk('terminal'), '-inf', '(' .. ARGV[2],
  'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, h in ipairs(doomed) do n = n + delete_run(h) end
return n
"""

CLAIM_RUN = r"""
-- ARGV: P, h, owner, expires_at, now, with_history
local h = ARGV[2]
if redis.call('EXISTS', rk(h) .. ':run') == 0 then return {'notfound'} end
if not claimable(h, ARGV[5]) then return {'notclaimable', run_of(h)} end
return {'claimed', claim(h, ARGV[3], ARGV[4], ARGV[5], ARGV[6])}
"""

CLAIM_RUNNABLE = r"""
-- ARGV: P, owner, expires_at, limit, now, with_history
-- Claimable runs are the queued ones and the running ones whose lease expired; both
-- are ordered by (ready_at, run_id). The first `limit` queued runs and every expired
-- lease are merged, so the result is exactly the `limit` oldest claimable runs.
local limit = tonumber(ARGV[4])
local now = ARGV[5]
local candidates = {}
local queued = redis.call('ZRANGE', gk('queued'), 0, limit - 1, 'WITHSCORES')
for i = 1, #queued, 2 do
  if alive(queued[i]) then candidates[#candidates + 1] = {tonumber(queued[i + 1]), queued[i]} end
end
for _, h in ipairs(redis.call('ZRANGEBYSCORE', gk('leases'), '-inf', now)) do
  if alive(h) then
    candidates[#candidates + 1] = {tonumber(redis.call('HGET', rk(h) .. ':run', 'ready')), h}
  end
end
-- Members are hex, so string order is byte order whatever the server's locale.
table.sort(candidates, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local out = {}
for i = 1, math.min(limit, #candidates) do
  out[i] = claim(candidates[i][2], ARGV[2], ARGV[3], now, ARGV[6])
end
return out
"""

HEARTBEAT = r"""
-- ARGV: P, h, owner, token, expires_at
local h = ARGV[2]
local problem = lease_problem(h, ARGV[3], ARGV[4])
if problem then return {problem} end
redis.call('HSET', rk(h) .. ':run', 'l_exp', ARGV[5])
sync(h)
return {'ok'}
"""

APPEND_EVENTS = r"""
-- ARGV: P, h, owner, token, then the append arguments (see append)
local h = ARGV[2]
local problem = lease_problem(h, ARGV[3], ARGV[4])
if problem then return {problem} end
local _, index = append(h, 5)
if not _ then return {'conflict', index} end
return {'ok', index}
"""

SETTLE_RUN = r"""
-- ARGV: P, h, owner, token, the append arguments, then status, output, error,
-- w_kind, w_step, w_key, w_wake, w_meta
local h = ARGV[2]
local k = rk(h) .. ':run'
local problem = lease_problem(h, ARGV[3], ARGV[4])
if problem then return {problem} end
local now = ARGV[6]
local i, index = append(h, 5)
if not i then return {'conflict', index} end
local status = ARGV[i]
redis.call('HDEL', k, unpack(LEASE_FIELDS))
if status == 'queued' then
  make_queued(h, now)
elseif status == 'paused' then
  local wkind, wstep, wkey, wwake, wmeta =
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local matched = false
  local inbox = redis.call('HGETALL', rk(h) .. ':inbox')
  for j = 1, #inbox, 2 do
    if redis.call('SISMEMBER', rk(h) .. ':consumed', inbox[j]) == 0
      and matches(wkind, wstep, wkey, wwake ~= '', inbox[j], inbox[j + 1]) then
      matched = true
      break
    end
  end
  if matched then
    make_queued(h, now)
  else
    redis.call('HSET', k, 'status', 'paused', 'updated', now, 'w_kind', wkind, 'w_step', wstep)
    redis.call('HDEL', k, 'ready', 'w_key', 'w_wake', 'w_meta')
    if wkey ~= '' then redis.call('HSET', k, 'w_key', wkey) end
    if wwake ~= '' then redis.call('HSET', k, 'w_wake', wwake) end
    if wmeta ~= '' then redis.call('HSET', k, 'w_meta', wmeta) end
  end
else
  redis.call('HSET', k, 'status', status, 'updated', now)
  redis.call('HDEL', k, 'ready', unpack(WAIT_FIELDS))
  if ARGV[i + 1] ~= '' then redis.call('HSET', k, 'output', ARGV[i + 1]) end
  if ARGV[i + 2] ~= '' then redis.call('HSET', k, 'error', ARGV[i + 2]) end
end
sync(h)
return {'ok', run_of(h)}
"""

DELIVER = r"""
-- ARGV: P, h, inbox field, record, now
local h = ARGV[2]
local k = rk(h) .. ':run'
local f = redis.call('HMGET', k, 'status', 'w_kind', 'w_step', 'w_key', 'w_wake')
if not f[1] then return {'notfound'} end
local seen = redis.call('HGET', rk(h) .. ':inbox', ARGV[3])
if seen then
  return {'duplicate', seen, redis.call('SISMEMBER', rk(h) .. ':consumed', ARGV[3])}
end
if TERMINAL[f[1]] then return {'closed', run_of(h)} end
redis.call('HSET', rk(h) .. ':inbox', ARGV[3], ARGV[4])
if f[1] == 'paused' and matches(f[2], f[3], f[4], f[5], ARGV[3], ARGV[4]) then
  make_queued(h, ARGV[5])
  sync(h)
  return {'delivered', run_of(h)}
end
return {'buffered', run_of(h)}
"""

FIRE_DUE_TIMERS = r"""
-- ARGV: P, now, limit
local now = ARGV[2]
local due = redis.call('ZRANGEBYSCORE', gk('timers'), '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, h in ipairs(due) do
  if alive(h) then  -- (Lua 5.1: no goto/continue)
    local k = rk(h) .. ':run'
    local f = redis.call('HMGET', k, 'id', 'w_kind', 'w_step', 'w_key', 'w_wake')
    local name = 'null'
    if f[2] == 'signal' then name = cjson.encode(f[4]) end
    -- Built by concatenation: the times are kept as the decimal strings they came as.
    local record = '[' .. name .. ',' .. cjson.encode(f[3]) .. ',' ..
      cjson.encode('{"wake_at":' .. f[5] .. '}') .. ',null,' .. now .. ']'
    local field = 'timer:' .. f[3]
    -- A fresh firing replaces an earlier one of the same step (a loop may sleep on
    -- one step id again and again).
    redis.call('HSET', rk(h) .. ':inbox', field, record)
    redis.call('SREM', rk(h) .. ':consumed', field)
    make_queued(h, now)
    sync(h)
    out[#out + 1] = {f[1], field, record}
  end
end
return out
"""

UPSERT_SCHEDULE = r"""
-- ARGV: P, schedule hex, schedule_id, workflow_id, version, spec, overlap, input,
-- enabled ('1'/'0'), now, first tick after now
local key = gk('sched:' .. ARGV[2])
local old = redis.call('HMGET', key, 'spec', 'enabled')
local enabled = ARGV[9]
-- Keep a due tick across re-declaration; re-plan only when the timing changed or
-- the schedule wakes up.
if not old[1] or old[1] ~= ARGV[6] or (enabled == '1' and old[2] == '0') then
  redis.call('HSET', key, 'next', ARGV[11])
end
redis.call('HSET', key, 'id', ARGV[3], 'wf', ARGV[4], 'spec', ARGV[6], 'overlap', ARGV[7],
  'enabled', enabled, 'updated', ARGV[10])
redis.call('HDEL', key, 'ver', 'input')
if ARGV[5] ~= '' then redis.call('HSET', key, 'ver', ARGV[5]) end
if ARGV[8] ~= '' then redis.call('HSET', key, 'input', ARGV[8]) end
redis.call('ZADD', gk('schedules'), 0, ARGV[2])
if enabled == '1' then
  redis.call('ZADD', gk('sched_due'), redis.call('HGET', key, 'next'), ARGV[2])
else
  redis.call('ZREM', gk('sched_due'), ARGV[2])
end
return redis.call('HGETALL', key)
"""

DELETE_SCHEDULE = r"""
-- ARGV: P, schedule hex
redis.call('ZREM', gk('schedules'), ARGV[2])
redis.call('ZREM', gk('sched_due'), ARGV[2])
return redis.call('DEL', gk('sched:' .. ARGV[2]))
"""

FIRE_DUE_SCHEDULES = r"""
-- ARGV: P, now, limit, then per due candidate (in (next_fire_at, id) order) four
-- values: schedule hex, the fire_at it was read with, its spec, its next tick after now
-- (computed by the caller: cron needs Python). A candidate whose schedule changed since
-- it was read is passed over, so each tick fires exactly once under concurrent callers.
local now = ARGV[2]
local limit = tonumber(ARGV[3])
local pad = string.rep('0', 15 - #now) .. now
local out = {}
local i = 4
while i <= #ARGV and #out < limit do
  local s, fire_at, spec, after = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local key = gk('sched:' .. s)
  local f = redis.call('HMGET', key, 'id', 'wf', 'ver', 'spec', 'overlap', 'input', 'enabled',
    'next', 'last_run')
  -- The candidate's hash may have been read after another caller advanced it: the
  -- tick must still be the one read and still be due.
  if f[1] and f[7] == '1' and f[8] == fire_at and f[4] == spec
    and tonumber(fire_at) <= tonumber(now) then
    local busy = false
    if f[9] then
      local st = redis.call('HGET', rk(hex(f[9])) .. ':run', 'status')
      busy = st and not TERMINAL[st] or false
    end
    -- A buffered tick stays due without blocking the schedules behind it.
    if not (f[5] == 'buffer_one' and busy) then
      redis.call('HSET', key, 'next', after)
      redis.call('ZADD', gk('sched_due'), after, s)
      if f[5] == 'skip' and busy then
        out[#out + 1] = {f[1], fire_at, 'skipped', false, after}
      else
        local run_id = f[1] .. '@' .. fire_at
        local h = hex(run_id)
        if redis.call('EXISTS', rk(h) .. ':run') == 0 then
          create_run(h, run_id, f[2], f[3] or '', f[6] or '', now, pad .. ':' .. h, hex(f[2]))
        end
        redis.call('HSET', key, 'last_fired', fire_at, 'last_run', run_id)
        out[#out + 1] = {f[1], fire_at, 'fired', run_id, after}
      end
    end
  end
end
return out
"""
