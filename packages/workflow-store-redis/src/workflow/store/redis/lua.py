"""The Lua scripts: one per state transition, so each transition is atomic.

Conventions (see :mod:`workflow.store.redis.keys` for the layout):

* One-run scripts take the run's bucket tag ``T`` (``P{b<k>}``) as ``ARGV[1]`` and the
  run id's hex as ``ARGV[2]``, and declare every key they touch that the caller can
  name (:meth:`Keyspace.run_keys`) as ``KEYS``, so a cluster routes them to the
  bucket's slot.
* Many-run scripts take ``ARGV[1] = n`` and then ``n`` bucket tags, and declare those
  buckets' indexes as ``KEYS``. On a standalone server one call covers every bucket;
  on a cluster each call covers one bucket (one slot). Keys they derive from an index
  member (a run of the bucket) or from a run's fields (its workflow's index) are in
  the same bucket, hence the same slot, which is the rule Redis Cluster enforces.
* With ``dry = '1'`` a many-run script only lists what it would act on (with the
  sort key), so the caller can merge buckets on a cluster before acting. After
  ``dry`` comes a count ``m`` and ``m`` index members: ``m = 0`` (standalone, and the
  dry step) scans the buckets' indexes; ``m > 0`` (the cluster's acting step, one
  bucket) acts on exactly those members, the dry step's winners, that still qualify,
  and on nothing else (re-scanning would see another window: claim_runnable's
  expired leases are read in ``expires_at`` order but ranked by ``ready_at``).
* Times arrive as decimal strings and are stored as given: Lua numbers are doubles
  and would print large values in exponent form, so scripts never format a time
  they computed. Times are exact in a double (``MAX_MS`` < 2**53), so comparing them
  with ``tonumber`` is exact.
* An empty string argument means "absent" (no valid id, time or JSON text is empty).
* Run fields: ``id wf ver status input output error w_kind w_step w_key w_wake w_meta
  l_owner l_token l_exp token next created updated ready cm deadline parent ppolicy``;
  an absent field is ``None``. ``token`` is the last token handed out, ``cm`` the
  list-order member, ``parent``/``ppolicy`` a child's link (see tell_parent, cascade).
* Inbox fields are ``"<kind>:<key>"``; a record is the JSON array
  ``[name, step_id, payload_text, meta_text, received_at]``.
* :func:`sync` derives every index membership from the run's fields after each
  change, so an index can never disagree with the run it points at.
"""

from __future__ import annotations

PRELUDE = r"""
local function rk(T, h) return T .. ':run:' .. h end
local function ek(T, h) return T .. ':events:' .. h end
local function ik(T, h) return T .. ':inbox:' .. h end
local function ck(T, h) return T .. ':consumed:' .. h end
local function gk(T, name) return T .. ':' .. name end
local function hex(s)
  return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
end
local TERMINAL = {finished = true, errored = true, cancelled = true, timed_out = true}
local WAIT_FIELDS = {'w_kind', 'w_step', 'w_key', 'w_wake', 'w_meta'}
local LEASE_FIELDS = {'l_owner', 'l_token', 'l_exp'}
-- Expired leases a claim looks at per bucket: the claim order is exact up to this many
-- expired leases in one bucket (a mass failure of workers), the earliest-expired first
-- beyond it.
local EXPIRED_SCAN = 1000
local STATUSES = {'queued', 'running', 'paused', 'finished', 'errored', 'cancelled',
  'timed_out'}

-- The claim order of a queued run, as a lex member of the `ready` indexes: the inverted
-- priority (10 digits: higher first), ready_at (15 digits), the run id's hex.
local DEFAULT_PO = '2147483647'
local function ready_member(po, ready, h)
  return (po or DEFAULT_PO) .. ':' .. string.rep('0', 15 - #ready) .. ready .. ':' .. h
end
local READY_PREFIX = 27  -- characters before the hex in a ready member

local function sync(T, h)
  local f = redis.call('HMGET', rk(T, h), 'status', 'ready', 'l_exp', 'w_wake', 'updated', 'cm',
    'deadline', 'q', 'pk', 'po', 'rm')
  local s = f[1]
  -- Queued runs in claim order (priority, ready_at, run_id), over all queues and per
  -- queue; `rm` remembers the member, which changes with ready_at.
  local qh = hex(f[8] or 'default')
  -- (A field that is absent comes back as false, never nil.)
  local rm, old = false, f[11]
  if s == 'queued' then rm = ready_member(f[10], f[2], h) end
  if old ~= rm then
    if old then
      redis.call('ZREM', gk(T, 'ready'), old)
      redis.call('ZREM', gk(T, 'qr:' .. qh), old)
    end
    if rm then
      redis.call('ZADD', gk(T, 'ready'), 0, rm)
      redis.call('ZADD', gk(T, 'qr:' .. qh), 0, rm)
      redis.call('HSET', rk(T, h), 'rm', rm)
    else
      redis.call('HDEL', rk(T, h), 'rm')
    end
  end
  -- Leases per queue and per (queue, partition key), score expires_at: what a claim
  -- counts against the queue's limits.
  local qk = f[9] and gk(T, 'qk:' .. qh .. ':' .. hex(f[9]))
  if s == 'running' then
    redis.call('ZADD', gk(T, 'ql:' .. qh), f[3], h)
    if qk then redis.call('ZADD', qk, f[3], h) end
  else
    redis.call('ZREM', gk(T, 'ql:' .. qh), h)
    if qk then redis.call('ZREM', qk, h) end
  end
  -- List order per status (status-filtered listing reads only matching runs).
  if f[6] then
    for _, name in ipairs(STATUSES) do
      if name == s then redis.call('ZADD', gk(T, 'status:' .. name), 0, f[6])
      else redis.call('ZREM', gk(T, 'status:' .. name), f[6]) end
    end
  end
  if s == 'queued' then redis.call('ZADD', gk(T, 'queued'), f[2], h)
  else redis.call('ZREM', gk(T, 'queued'), h) end
  if s == 'running' then redis.call('ZADD', gk(T, 'leases'), f[3], h)
  else redis.call('ZREM', gk(T, 'leases'), h) end
  if s == 'paused' and f[4] then redis.call('ZADD', gk(T, 'timers'), f[4], h)
  else redis.call('ZREM', gk(T, 'timers'), h) end
  if TERMINAL[s] then redis.call('ZADD', gk(T, 'terminal'), f[5], h)
  else redis.call('ZREM', gk(T, 'terminal'), h) end
  -- Live runs with a deadline: a run that ended has none left to fire.
  if s and not TERMINAL[s] and f[7] then redis.call('ZADD', gk(T, 'deadlines'), f[7], h)
  else redis.call('ZREM', gk(T, 'deadlines'), h) end
end

local function run_of(T, h) return redis.call('HGETALL', rk(T, h)) end

-- Wake-up hint: a run of the keyspace may have become claimable. At most one PUBLISH
-- per script call, on the keyspace's channel (the bucket tag without its hash tag,
-- then 'runnable': subscriber.channel_for).
local woke = false
local function wake(T)
  if woke then return end
  woke = true
  redis.call('PUBLISH', string.match(T, '^(.*){b%d+}$') .. 'runnable', '')
end

-- Whether an index member's run still exists. One that does not (evicted, or deleted
-- by hand) is dropped from the indexes, so it can never stall the many-run scripts.
local function alive(T, h)
  if redis.call('EXISTS', rk(T, h)) == 1 then return true end
  sync(T, h)
  return false
end

-- The inbox entries not consumed yet, as a flat field/record list: a claim ships only
-- these (consumed payloads stay on the server for read_inbox).
local function open_inbox(T, h)
  local inbox = redis.call('HGETALL', ik(T, h))
  if #inbox == 0 then return inbox end
  local consumed = {}
  for _, field in ipairs(redis.call('SMEMBERS', ck(T, h))) do consumed[field] = true end
  local out = {}
  for j = 1, #inbox, 2 do
    if not consumed[inbox[j]] then
      out[#out + 1] = inbox[j]
      out[#out + 1] = inbox[j + 1]
    end
  end
  return out
end

local function make_queued(T, h, now)
  local k = rk(T, h)
  redis.call('HSET', k, 'status', 'queued', 'ready', now, 'updated', now)
  redis.call('HDEL', k, unpack(WAIT_FIELDS))
  wake(T)
end

-- Whether inbox entry (field, record) satisfies the wait (the rule of Wait.matches).
local function matches(wkind, wstep, wkey, wwake, field, record)
  local kind, key = string.match(field, '^(%a+):(.*)$')
  if kind == 'timer' then return (wwake and key == wstep) and true or false end
  if kind == 'child' then return wkind == 'child' and key == wkey end
  if kind == 'deadline' then return false end
  if kind == 'signal' then
    if wkind ~= 'signal' then return false end
    local e = cjson.decode(record)
    return e[1] == wkey and (e[2] == cjson.null or e[2] == wstep)
  end
  return wkind == 'approval' and key == wkey
end

-- nil when the lease (owner, token) is the run's current one, else the reason.
local function lease_problem(T, h, owner, token)
  local f = redis.call('HMGET', rk(T, h), 'status', 'l_owner', 'l_token')
  if not f[1] then return 'gone' end
  if f[1] == 'cancelled' then return 'cancelled' end
  if f[1] == 'timed_out' then return 'timed_out' end
  if f[2] ~= owner or f[3] ~= token then return 'lost' end
  return nil
end

-- Appends ARGV[i+3 ..] events and consumes refs; ARGV[i] = expected, ARGV[i+1] = now
-- (unused: records carry their time), ARGV[i+2] = event count, then the events, then
-- the consume count and the inbox fields. Returns (next ARGV index, next index) or
-- (nil, current index) on a log conflict.
local function append(T, h, i)
  local expected = tonumber(ARGV[i])
  local n = tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', rk(T, h), 'next'))
  if current ~= expected then return nil, current end
  local j = i + 3
  while j < i + 3 + n do
    local last = math.min(j + 999, i + 2 + n)
    redis.call('RPUSH', ek(T, h), unpack(ARGV, j, last))
    j = last + 1
  end
  if n > 0 then redis.call('HINCRBY', rk(T, h), 'next', n) end
  local c = tonumber(ARGV[j])
  for m = j + 1, j + c do
    if redis.call('HEXISTS', ik(T, h), ARGV[m]) == 1 then
      redis.call('SADD', ck(T, h), ARGV[m])
    end
  end
  return j + c + 1, current + n
end

local function claimable(T, h, now)
  local f = redis.call('HMGET', rk(T, h), 'status', 'l_exp')
  if f[1] == 'queued' then return true end
  return f[1] == 'running' and f[2] and tonumber(f[2]) <= tonumber(now) or false
end

-- Queue limits (docs/semantics.md, Queues). P is the keyspace prefix and B its bucket
-- count on a standalone server, where one script reads every bucket; P = '' on a
-- cluster, where no queue has limits (the store does not declare queues there). A
-- queue's leased runs are counted from the buckets' `ql:`/`qk:` indexes (leases that
-- have not expired at `now`), once per script call, then counted on as this call
-- hands out leases: the count and the claims are one atomic step.
local GATES = {}
local function leased(P, B, name, now)
  local n = 0
  for k = 0, B - 1 do
    n = n + redis.call('ZCOUNT', P .. '{b' .. k .. '}:' .. name, '(' .. now, '+inf')
  end
  return n
end

local function queue_key(P, q) return P .. '{g}:queue:' .. hex(q) end

local function gate(P, B, q, now)
  local g = GATES[q]
  if g ~= nil then return g end
  local key = queue_key(P, q)
  local f = redis.call('HMGET', key, 'conc', 'pkc', 'rc', 'rp', 'ws', 'wu')
  if not (f[1] or f[2] or f[3]) then
    GATES[q] = false
    return false
  end
  g = {key = key, qh = hex(q), conc = tonumber(f[1]), pkc = tonumber(f[2]),
    rc = tonumber(f[3]), keyed = {}}
  if g.conc then g.leased = leased(P, B, 'ql:' .. g.qh, now) end
  if g.rc then
    local t = tonumber(now)
    local start = t - t % tonumber(f[4])
    local ws = tonumber(f[5])
    -- A caller whose clock is behind counts in the latest window: never a reset.
    if ws and ws >= start then g.ws, g.wu = ws, tonumber(f[6]) else g.ws, g.wu = start, 0 end
  end
  GATES[q] = g
  return g
end

-- Whether one more run of queue q with partition key pk (false: none) may be leased at
-- `now`; if so, its place is taken (and the rate window written back).
local function admit(P, B, q, pk, now)
  if P == '' then return true end
  local g = gate(P, B, q or 'default', now)
  if not g then return true end
  if g.conc and g.leased >= g.conc then return false end
  local kc = nil
  if g.pkc and pk then
    kc = g.keyed[pk]
    if kc == nil then kc = leased(P, B, 'qk:' .. g.qh .. ':' .. hex(pk), now) end
    if kc >= g.pkc then return false end
  end
  if g.rc and g.wu >= g.rc then return false end
  if g.conc then g.leased = g.leased + 1 end
  if kc then g.keyed[pk] = kc + 1 end
  if g.rc then
    g.wu = g.wu + 1
    redis.call('HSET', g.key, 'ws', string.format('%.0f', g.ws), 'wu', string.format('%.0f', g.wu))
  end
  return true
end

-- Whether queue q limits how many runs are leased at once (then an expired lease has
-- given its place up and a heartbeat cannot take it back).
local function holds_places(P, q)
  if P == '' then return false end
  local f = redis.call('HMGET', queue_key(P, q or 'default'), 'conc', 'pkc')
  return (f[1] or f[2]) and true or false
end

local function claim(T, h, owner, expires, now, history)
  local k = rk(T, h)
  local token = redis.call('HINCRBY', k, 'token', 1)
  if redis.call('HGET', k, 'status') ~= 'running' then
    redis.call('HSET', k, 'status', 'running', 'updated', now)
  end
  redis.call('HSET', k, 'l_owner', owner, 'l_token', token, 'l_exp', expires)
  sync(T, h)
  local events = {}
  if history == '1' then events = redis.call('LRANGE', ek(T, h), 0, -1) end
  return {run_of(T, h), open_inbox(T, h), events}
end

-- Writes a new queued run (the caller checked that it does not exist); `extra` holds
-- more field/value pairs (placement, deadline) or is nil.
local function create_run(T, h, id, wf, ver, input, now, cm, wfh, extra)
  local k = rk(T, h)
  redis.call('HSET', k, 'id', id, 'wf', wf, 'status', 'queued', 'next', 0, 'token', 0,
    'created', now, 'updated', now, 'ready', now, 'cm', cm)
  if extra and #extra > 0 then redis.call('HSET', k, unpack(extra)) end
  if ver ~= '' then redis.call('HSET', k, 'ver', ver) end
  if input ~= '' then redis.call('HSET', k, 'input', input) end
  redis.call('ZADD', gk(T, 'created'), 0, cm)
  redis.call('ZADD', gk(T, 'created:' .. wfh), 0, cm)
  sync(T, h)
  wake(T)
end

-- Ends a live run `status` (cancelled or timed_out) with the error text `err`: its
-- lease, wait and ready time go.
local function end_run(T, h, status, err, now)
  local k = rk(T, h)
  redis.call('HSET', k, 'status', status, 'error', err, 'updated', now)
  redis.call('HDEL', k, 'ready', unpack(WAIT_FIELDS))
  redis.call('HDEL', k, unpack(LEASE_FIELDS))
  sync(T, h)
end

-- Children (docs/semantics.md, Children). The store refuses a child outside its
-- parent's bucket, so a whole tree is in one bucket (one slot): what these derive
-- from a run's fields or an index member is in the calling script's slot. Run fields
-- 'parent' (the parent's id) and 'ppolicy' ('cancel' or 'abandon'); T:children:<parent
-- hex> holds the parent's children as list-order members (as T:created does).
local function kids(T, ph) return gk(T, 'children:' .. ph) end

-- The stored ErrorInfo("ParentEnded", "parent run <P> ended <status>", "cancelled")
-- (arguments.parent_ended_error).
local function parent_ended(pid, pstatus)
  return '{"type":"ParentEnded","message":' ..
    cjson.encode('parent run ' .. pid .. ' ended ' .. pstatus) .. ',"code":"cancelled"}'
end

-- Run h has just ended. When it has a parent that exists and is live, the parent gets
-- the child's entry (an entry already there is kept as it is) and, paused on this
-- child's wait, is queued. A run without a parent costs one HGET.
local function tell_parent(T, h, now)
  local parent = redis.call('HGET', rk(T, h), 'parent')
  if not parent then return end
  local f = redis.call('HMGET', rk(T, h), 'id', 'status', 'output', 'error')
  local ph = hex(parent)
  local p = redis.call('HMGET', rk(T, ph), 'status', 'w_kind', 'w_key')
  if not p[1] or TERMINAL[p[1]] then return end
  local err = 'null'
  if f[4] then
    -- The child's error without its traceback (arguments.child_payload).
    local e = cjson.decode(f[4])
    err = '{"type":' .. cjson.encode(e.type) .. ',"message":' .. cjson.encode(e.message) ..
      ',"code":' .. cjson.encode(e.code) .. '}'
  end
  -- The output is kept as the JSON text it was stored as.
  local payload = '{"status":"' .. f[2] .. '","output":' .. (f[3] or 'null') .. ',"error":' ..
    err .. '}'
  local record = '[null,null,' .. cjson.encode(payload) .. ',null,' .. now .. ']'
  redis.call('HSETNX', ik(T, ph), 'child:' .. f[1], record)
  if p[1] == 'paused' and p[2] == 'child' and p[3] == f[1] then
    make_queued(T, ph, now)
    sync(T, ph)
  end
end

-- Run h has just ended `status` (cancelled or timed_out): its live children of policy
-- 'cancel' end cancelled with ParentEnded, and so on down the tree (a stack, not
-- recursion: a tree may be deep). They write no child entries: their parents ended.
-- A run without children costs one ZRANGE of a missing key. Returns the hex of each
-- run it ended that was running (a cluster frees their queue places).
local function cascade(T, h, status, now)
  local leased = {}
  local stack = {{h, status}}
  while #stack > 0 do
    local top = table.remove(stack)
    local err = nil
    for _, m in ipairs(redis.call('ZRANGE', kids(T, top[1]), 0, -1)) do
      local ch = string.match(m, ':(%x+)$')
      local f = redis.call('HMGET', rk(T, ch), 'status', 'ppolicy')
      if f[1] and not TERMINAL[f[1]] and f[2] == 'cancel' then
        err = err or parent_ended(redis.call('HGET', rk(T, top[1]), 'id'), top[2])
        end_run(T, ch, 'cancelled', err, now)
        stack[#stack + 1] = {ch, 'cancelled'}
        if f[1] == 'running' then leased[#leased + 1] = ch end
      end
    end
  end
  return leased
end

local function delete_run(T, h)
  local f = redis.call('HMGET', rk(T, h), 'wf', 'cm', 'q', 'pk', 'rm', 'parent')
  if not f[1] then return 0 end
  local qh = hex(f[3] or 'default')
  if f[5] then
    redis.call('ZREM', gk(T, 'ready'), f[5])
    redis.call('ZREM', gk(T, 'qr:' .. qh), f[5])
  end
  redis.call('ZREM', gk(T, 'ql:' .. qh), h)
  if f[4] then redis.call('ZREM', gk(T, 'qk:' .. qh .. ':' .. hex(f[4])), h) end
  -- A child leaves its parent's list; a parent's list stays (its children keep their
  -- link to it, docs/semantics.md).
  if f[6] then redis.call('ZREM', kids(T, hex(f[6])), f[2]) end
  redis.call('ZREM', gk(T, 'created'), f[2])
  redis.call('ZREM', gk(T, 'created:' .. hex(f[1])), f[2])
  for _, name in ipairs(STATUSES) do redis.call('ZREM', gk(T, 'status:' .. name), f[2]) end
  for _, name in ipairs({'queued', 'leases', 'timers', 'terminal', 'deadlines'}) do
    redis.call('ZREM', gk(T, name), h)
  end
  redis.call('UNLINK', rk(T, h), ek(T, h), ik(T, h), ck(T, h))
  return 1
end

-- Many-run scripts: ARGV[1] = n, ARGV[2 .. n+1] = bucket tags; returns the tags and the
-- ARGV index just before the script's own arguments.
local function buckets()
  local n = tonumber(ARGV[1])
  local tags = {}
  for b = 1, n do tags[b] = ARGV[b + 1] end
  return tags, n + 1
end

-- The members the cluster's acting step names (ARGV[i] = m, then m members): nil when
-- m = 0 (scan the indexes instead).
local function named(i)
  local m = tonumber(ARGV[i] or '0')
  if m == 0 then return nil end
  local out = {}
  for j = 1, m do out[j] = ARGV[i + j] end
  return out
end

-- Candidates are {score, member hex, tag}: (score, id) order. Members are hex, so
-- string order is byte order whatever the server's locale.
local function by_score_then_id(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end
"""

CREATE_RUN = r"""
-- ARGV: T, h, run_id, workflow_id, version, input, now, created member, workflow hex,
-- owner ('' = leave it queued), lease expiry (with an owner: created claimed, token 1,
-- if its queue has room), deadline_at ('' = none), queue ('' = default), priority and
-- its inverted order ('' = 0), partition key ('' = none), P, B (see admit), parent id
-- ('' = none), parent hex ('' = the parent is in another bucket: refused), parent
-- policy
local T, h = ARGV[1], ARGV[2]
if redis.call('EXISTS', rk(T, h)) == 1 then return {'existing', run_of(T, h)} end
local parent, ph, ended = ARGV[19], ARGV[20], nil
if parent ~= '' then
  if ph == '' then return {'parent_elsewhere'} end
  local pstatus = redis.call('HGET', rk(T, ph), 'status')
  if not pstatus then return {'no_parent'} end
  -- Too late for the parent's cascade: created as the cascade would have left it.
  if ARGV[21] == 'cancel' and (pstatus == 'cancelled' or pstatus == 'timed_out') then
    ended = parent_ended(parent, pstatus)
  end
end
local extra = {}
for j, name in ipairs({'deadline', 'q', 'pri', 'po', 'pk'}) do
  local value = ARGV[11 + j]
  if value ~= '' then
    extra[#extra + 1] = name
    extra[#extra + 1] = value
  end
end
local q, pk = ARGV[13], ARGV[16]
-- A queue at a limit: the run is created queued, claimed by nobody. A run created
-- ended takes no place.
local claimed = ARGV[10] ~= '' and not ended and
  admit(ARGV[17], tonumber(ARGV[18]), q ~= '' and q or 'default', pk ~= '' and pk or false,
    ARGV[7])
-- A run created claimed is nobody else's to take, and one created ended is nobody's:
-- no wake-up hint for either.
if claimed or ended then woke = true end
create_run(T, h, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], extra)
if parent ~= '' then
  redis.call('HSET', rk(T, h), 'parent', parent, 'ppolicy', ARGV[21])
  redis.call('ZADD', kids(T, ph), 0, ARGV[8])
end
if ended then
  end_run(T, h, 'cancelled', ended, ARGV[7])
elseif claimed then
  redis.call('HSET', rk(T, h), 'status', 'running', 'token', 1,
    'l_owner', ARGV[10], 'l_token', 1, 'l_exp', ARGV[11])
  sync(T, h)
end
return {'created', run_of(T, h)}
"""

CANCEL_RUN = r"""
-- ARGV: T, h, error, now
local T, h = ARGV[1], ARGV[2]
local status = redis.call('HGET', rk(T, h), 'status')
if not status then return {'notfound'} end
if TERMINAL[status] then return {'terminal', run_of(T, h)} end
-- The token of the lease it ends (a cluster then releases its queue reservation).
local token = redis.call('HGET', rk(T, h), 'l_token') or ''
end_run(T, h, 'cancelled', ARGV[3], ARGV[4])
tell_parent(T, h, ARGV[4])
-- The leased runs the cascade ended (a cluster then forgets their queue places).
return {'cancelled', run_of(T, h), token, cascade(T, h, 'cancelled', ARGV[4])}
"""

DELETE_RUN = r"""
-- ARGV: T, h
return delete_run(ARGV[1], ARGV[2])
"""

PURGE_RUNS = r"""
-- ARGV: n, tags, terminal_before, limit, dry, m, m members (see named). Deletes (or,
-- dry, lists) the `limit` terminal runs updated before the cutoff, oldest
-- (updated_at, run_id) first; returns {updated_at, h} of each.
local tags, a = buckets()
local before, limit, dry = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
local only = named(a + 4)
local c = {}
if only then
  local T = tags[1]
  for _, h in ipairs(only) do
    local score = redis.call('ZSCORE', gk(T, 'terminal'), h)
    if score and tonumber(score) < tonumber(before) and alive(T, h) then
      c[#c + 1] = {tonumber(score), h, T}
    end
  end
else
  for _, T in ipairs(tags) do
    local doomed = redis.call('ZRANGEBYSCORE', gk(T, 'terminal'), '-inf', '(' .. before,
      'WITHSCORES', 'LIMIT', 0, limit)
    for i = 1, #doomed, 2 do
      if alive(T, doomed[i]) then c[#c + 1] = {tonumber(doomed[i + 1]), doomed[i], T} end
    end
  end
end
table.sort(c, by_score_then_id)
local out = {}
for i = 1, math.min(limit, #c) do
  if not dry then delete_run(c[i][3], c[i][2]) end
  out[i] = {c[i][1], c[i][2]}
end
return out
"""

CLAIM_RUN = r"""
-- ARGV: T, h, owner, expires_at, now, with_history, P, B (see admit), the token the run
-- must still have ('' = any: a cluster reserved the claim's place for that one)
local T, h = ARGV[1], ARGV[2]
if redis.call('EXISTS', rk(T, h)) == 0 then return {'notfound'} end
if not claimable(T, h, ARGV[5]) then return {'notclaimable', run_of(T, h)} end
if ARGV[9] ~= '' and redis.call('HGET', rk(T, h), 'token') ~= ARGV[9] then
  return {'notclaimable', run_of(T, h)}
end
local f = redis.call('HMGET', rk(T, h), 'q', 'pk')
if not admit(ARGV[7], tonumber(ARGV[8]), f[1], f[2], ARGV[5]) then
  return {'notclaimable', run_of(T, h)}
end
return {'claimed', claim(T, h, ARGV[3], ARGV[4], ARGV[5], ARGV[6])}
"""

CLAIM_RUNNABLE = r"""
-- ARGV: n, tags, owner, expires_at, limit, now, with_history, dry, after (dry: read only
-- the candidates after this ready member; '' = from the first), P, B (see admit), nq,
-- nq queue names (0: every queue), nf, nf full queues and (queue, key)s as 'Q' and 'Q:K'
-- in hex (a cluster's dry step passes over their runs: QUEUE_ROOM), m, m members
-- "<h>:<token>" (see named; a member is claimed only while its token is still the one
-- the dry step saw, so the place reserved for that claim is the one it takes).
-- Claimable runs are the queued ones and the running ones whose lease expired, in
-- claim order (priority descending, ready_at, run_id): the ready members (see
-- ready_member). The queued runs
-- are read from each bucket's `ready` index (or its `qr:<queue>` indexes, given
-- queues) in pages, merged with each bucket's expired leases (the EXPIRED_SCAN
-- earliest-expired at most: bounded work however many leases expired), and taken in
-- that order while their queue and key have room (admit): a run whose queue is full is
-- passed over, not the runs behind it, up to SKIP_SCAN passed-over runs per call.
-- Dry (a cluster): the first `limit` candidates after `after` not in a full queue or
-- key are listed, with their token, queue and key, for QUEUE_RESERVE; returns {more,
-- rows, passed}, `more` the last candidate it read when candidates may be left behind it
-- ('': it read them all), where the next round of the same call reads on, `passed` the
-- full entries it passed over runs of. Named members:
-- those still claimable are claimed. Returns {rank, h, claim} per run (dry rows:
-- {rank, h, token, queue, key}), in claim order.
local SKIP_SCAN = 1000
local tags, a = buckets()
local owner, expires, limit = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
local now, history, dry = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6] == '1'
local after = ARGV[a + 7]
local P, B = ARGV[a + 8], tonumber(ARGV[a + 9])
local nq = tonumber(ARGV[a + 10])
local wanted = nil
local names = {}
if nq > 0 then
  wanted = {}
  for j = 1, nq do
    names[j] = ARGV[a + 10 + j]
    wanted[names[j]] = true
  end
end
local nf = tonumber(ARGV[a + 11 + nq])
local full = {}
for j = 1, nf do full[ARGV[a + 11 + nq + j]] = true end
local only = named(a + 12 + nq + nf)
local function placement(T, h)
  return redis.call('HMGET', rk(T, h), 'q', 'pk', 'po', 'ready', 'token')
end
local function serves(q) return not wanted or wanted[q or 'default'] or false end
-- The full entries this call passed over runs of (a cluster checks them against the
-- room it reads meanwhile: see RedisStore._claim_on_cluster).
local used, passed = {}, {}
local function has_room(f)
  if nf == 0 then return true end
  local qh = hex(f[1] or 'default')
  local e = full[qh] and qh or (f[2] and full[qh .. ':' .. hex(f[2])] and qh .. ':' .. hex(f[2]))
  if not e then return true end
  if not used[e] then
    used[e] = true
    passed[#passed + 1] = e
  end
  return false
end
local out = {}
local function take(T, h, rank, f)
  if dry then
    if has_room(f) then out[#out + 1] = {rank, h, f[5], f[1] or 'default', f[2] or ''} end
  elseif admit(P, B, f[1], f[2], now) then
    out[#out + 1] = {rank, h, claim(T, h, owner, expires, now, history)}
  end
end
if only then
  local T = tags[1]
  local c = {}
  for _, member in ipairs(only) do
    local h, token = string.match(member, '^(%x+):(%d+)$')
    if alive(T, h) and claimable(T, h, now) then
      local f = placement(T, h)
      if serves(f[1]) and f[5] == token then
        c[#c + 1] = {ready_member(f[3], f[4] or '0', h), h, f}
      end
    end
  end
  table.sort(c, function(x, y) return x[1] < y[1] end)
  for _, x in ipairs(c) do
    if #out >= limit then break end
    take(T, x[2], x[1], x[3])
  end
  return out
end
-- Streams of candidates in claim order: per bucket its queued runs (paged by lex
-- cursor, so claims made meanwhile do not shift the pages) and its expired leases.
local streams = {}
local start = after == '' and '-' or '(' .. after
for _, T in ipairs(tags) do
  if wanted then
    for _, q in ipairs(names) do
      streams[#streams + 1] = {T = T, key = gk(T, 'qr:' .. hex(q)), from = start, buf = {},
        i = 1, first = true}
    end
  else
    streams[#streams + 1] = {T = T, key = gk(T, 'ready'), from = start, buf = {}, i = 1,
      first = true}
  end
  -- Every expired lease up to EXPIRED_SCAN, not only the `limit` earliest-expired:
  -- stale runs go in claim order, which expiry order is not.
  local expired = redis.call('ZRANGEBYSCORE', gk(T, 'leases'), '-inf', now, 'LIMIT', 0,
    math.max(limit, EXPIRED_SCAN))
  local stale = {}
  for _, h in ipairs(expired) do
    if alive(T, h) then
      local f = placement(T, h)
      local m = ready_member(f[3], f[4] or '0', h)
      if serves(f[1]) and (after == '' or m > after) then stale[#stale + 1] = m end
    end
  end
  table.sort(stale)
  streams[#streams + 1] = {T = T, buf = stale, i = 1, done = true}
end
local function head(st)
  if st.i > #st.buf then
    if st.done then return nil end
    local n = st.first and limit or math.max(limit, 100)
    st.buf = redis.call('ZRANGE', st.key, st.from, '+', 'BYLEX', 'LIMIT', 0, n)
    st.i, st.first = 1, false
    if #st.buf < n then st.done = true end
    if #st.buf == 0 then return nil end
    st.from = '(' .. st.buf[#st.buf]
  end
  return st.buf[st.i]
end
local seen, last = 0, nil
while #out < limit and seen < limit + SKIP_SCAN do
  local best, from = nil, nil
  for _, st in ipairs(streams) do
    local m = head(st)
    if m and (not best or m < best) then best, from = m, st end
  end
  if not best then
    last = nil
    break
  end
  from.i = from.i + 1
  seen = seen + 1
  last = best
  local T, h = from.T, string.sub(best, READY_PREFIX + 1)
  if not alive(T, h) then
    -- A run that is gone (evicted, deleted by hand) leaves the claim order too.
    redis.call('ZREM', gk(T, 'ready'), best)
    if from.key then redis.call('ZREM', from.key, best) end
  elseif claimable(T, h, now) then
    take(T, h, best, placement(T, h))
  end
end
if dry then
  local more = ''
  if last then
    for _, st in ipairs(streams) do
      if head(st) then
        more = last
        break
      end
    end
  end
  return {more, out, passed}
end
return out
"""

# Cluster: a queue's runs are in every bucket (many slots), so its limits are kept by
# reservations in the {g} slot, beside the queue's configuration: before a claim the
# claimer reserves a place per run (QUEUE_RESERVE: P{g}:qres:Q, and P{g}:qres:Q:K per
# key, member h, score the lease's expires_at; P{g}:qhold maps h to
# "<token>:<Q>:<K>:<rate window>:<claims>", the claim's token being its nonce), the
# bucket's script claims only runs with a reservation, unused reservations are returned
# (QUEUE_RELEASE), a heartbeat extends the reservation before the lease (QUEUE_EXTEND)
# and a settle or cancel releases it. A lease never outlives its reservation, so the
# live reservations of a queue are at least its leased runs.
QUEUE_PRELUDE = r"""
-- A run's reservation in P{g}:qhold: "<token>:<Q>:<K>:<rate window>:<claims>", the
-- token the lease will have (its nonce), and how many claims of that token share it.
local function qparse(v)
  local tok, qh, kh, ws, c = string.match(v, '^(%d+):(%x*):(%x*):(%d*):(%d+)$')
  return tok, qh, kh, ws, tonumber(c)
end
-- The queues and (queue, key)s without room at `now`, as 'Q' and 'Q:K' (hex): a claim's
-- dry step passes over their runs, so full queues never hide the runs behind them. (A
-- hint: QUEUE_RESERVE decides.)
local function no_room(list, P, now)
  local t = tonumber(now)
  local out = {}
  for _, qh in ipairs(redis.call('ZRANGE', list, 0, -1)) do
    local f = redis.call('HMGET', P .. '{g}:queue:' .. qh, 'conc', 'pkc', 'rc', 'rp', 'ws', 'wu')
    local res = P .. '{g}:qres:' .. qh
    local none = false
    if f[1] and redis.call('ZCOUNT', res, '(' .. now, '+inf') >= tonumber(f[1]) then none = true end
    if f[3] and f[5] and tonumber(f[5]) >= t - t % tonumber(f[4])
      and tonumber(f[6]) >= tonumber(f[3]) then none = true end
    if none then
      out[#out + 1] = qh
    elseif f[2] then
      local fk = P .. '{g}:qfull:' .. qh
      for _, kh in ipairs(redis.call('SMEMBERS', fk)) do
        if redis.call('ZCOUNT', res .. ':' .. kh, '(' .. now, '+inf') >= tonumber(f[2]) then
          out[#out + 1] = qh .. ':' .. kh
        else
          redis.call('SREM', fk, kh)
        end
      end
    end
  end
  return out
end
"""

QUEUE_ROOM = r"""
-- KEYS: the queue list. ARGV: P, now. The queues and (queue, key)s without room at
-- `now` (see no_room).
return no_room(KEYS[1], ARGV[1], ARGV[2])
"""

QUEUE_RESERVE = r"""
-- KEYS: the queue list. ARGV: P, now, expires_at, limit, n, then n candidates in claim
-- order, each h, the token its claim will have, queue, key ('' = none). Reserves a
-- place for each candidate whose queue and key have room at `now` (counting the
-- places reserved so far), at most `limit`. A run whose reservation is live already
-- gets none (it is leased, or a claim of it is under way), unless that reservation
-- is for the same token: then this claim shares it (at most one claim of a token can
-- win the bucket; the place is counted once and extended to the later expiry).
-- Returns 1 (reserved), 2 (shared) or 0 per candidate; with ARGV[6 + 4n] = '1' (a
-- claim_runnable round), {those, the queues and keys without room after them (no_room)},
-- so the call's next round reads past the runs of the queues and keys it filled.
local P, now, expires = ARGV[1], ARGV[2], ARGV[3]
local limit, n = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = tonumber(now)
local hold = P .. '{g}:qhold'
local gates = {}
local granted, out = 0, {}
for i = 0, n - 1 do
  local h, token, q, pk = ARGV[6 + 4 * i], ARGV[7 + 4 * i], ARGV[8 + 4 * i], ARGV[9 + 4 * i]
  local qh = hex(q)
  local res = P .. '{g}:qres:' .. qh
  local ok = 0
  local score = redis.call('ZSCORE', res, h)
  local live = score and tonumber(score) > t
  local v = live and redis.call('HGET', hold, h)
  if granted < limit and v then
    local tok, _, kh, ws, c = qparse(v)
    if tok == token then
      ok = 2
      granted = granted + 1
      redis.call('ZADD', res, 'GT', expires, h)
      if kh ~= '' then redis.call('ZADD', res .. ':' .. kh, 'GT', expires, h) end
      redis.call('HSET', hold, h, table.concat({tok, qh, kh, ws, c + 1}, ':'))
    end
  elseif granted < limit and not live then
    local g = gates[qh]
    if not g then
      local key = P .. '{g}:queue:' .. qh
      local f = redis.call('HMGET', key, 'conc', 'pkc', 'rc', 'rp', 'ws', 'wu')
      g = {key = key, conc = tonumber(f[1]), pkc = tonumber(f[2]), rc = tonumber(f[3]),
        keyed = {}, leased = redis.call('ZCOUNT', res, '(' .. now, '+inf')}
      if g.rc then
        local start = t - t % tonumber(f[4])
        local ws = tonumber(f[5])
        -- A caller whose clock is behind counts in the latest window: never a reset.
        if ws and ws >= start then g.ws, g.wu = ws, tonumber(f[6]) else g.ws, g.wu = start, 0 end
      end
      gates[qh] = g
    end
    local kh = pk ~= '' and hex(pk) or nil
    local kc = nil
    local room = not (g.conc and g.leased >= g.conc)
    if room and kh and g.pkc then
      kc = g.keyed[kh]
      if kc == nil then kc = redis.call('ZCOUNT', res .. ':' .. kh, '(' .. now, '+inf') end
      if kc >= g.pkc then
        room = false
        redis.call('SADD', P .. '{g}:qfull:' .. qh, kh)
      end
    end
    if room and g.rc and g.wu >= g.rc then room = false end
    if room then
      ok = 1
      granted = granted + 1
      g.leased = g.leased + 1
      local ws = ''
      if g.rc then
        g.wu = g.wu + 1
        ws = string.format('%.0f', g.ws)
        redis.call('HSET', g.key, 'ws', ws, 'wu', string.format('%.0f', g.wu))
      end
      redis.call('ZADD', res, expires, h)
      if kh then
        redis.call('ZADD', res .. ':' .. kh, expires, h)
        if kc then
          g.keyed[kh] = kc + 1
          if kc + 1 >= g.pkc then redis.call('SADD', P .. '{g}:qfull:' .. qh, kh) end
        end
      end
      redis.call('HSET', hold, h, table.concat({token, qh, kh or '', ws, 1}, ':'))
    end
  end
  out[i + 1] = ok
end
if ARGV[6 + 4 * n] == '1' then return {out, no_room(KEYS[1], P, now)} end
return out
"""

QUEUE_RELEASE = r"""
-- KEYS: the queue list. ARGV: P, n, then n triples (h, token, unused '1'/'0'). Gives
-- back the reservation of each run, if it is still the one made for that token (a
-- later claim's reservation is never removed). Unused: a claim that did not win gives
-- up its share; the reservation goes when no claim of it is left (one that won never
-- gives its share up: its settle or cancel removes the reservation), with its rate
-- claim if its window is still the latest.
local P, n = ARGV[1], tonumber(ARGV[2])
local hold = P .. '{g}:qhold'
for i = 0, n - 1 do
  local h, token, unused = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local v = redis.call('HGET', hold, h)
  if v then
    local tok, qh, kh, ws, c = qparse(v)
    if tok == token and unused == '1' and c > 1 then
      redis.call('HSET', hold, h, table.concat({tok, qh, kh, ws, c - 1}, ':'))
    elseif tok == token then
      local res = P .. '{g}:qres:' .. qh
      redis.call('ZREM', res, h)
      if kh ~= '' then redis.call('ZREM', res .. ':' .. kh, h) end
      redis.call('HDEL', hold, h)
      if unused == '1' and ws ~= '' then
        local key = P .. '{g}:queue:' .. qh
        local f = redis.call('HMGET', key, 'ws', 'wu')
        if f[1] == ws and tonumber(f[2]) > 0 then
          redis.call('HSET', key, 'wu', string.format('%.0f', tonumber(f[2]) - 1))
        end
      end
    end
  end
end
return 'ok'
"""

QUEUE_FORGET = r"""
-- KEYS: the queue list. ARGV: P, n, n run hexes. Drops the reservations of runs that
-- can hold no lease any more (timed out by their deadline, deleted), whatever lease
-- they were made for: their places are free at once.
local P, n = ARGV[1], tonumber(ARGV[2])
local hold = P .. '{g}:qhold'
for i = 1, n do
  local h = ARGV[2 + i]
  local v = redis.call('HGET', hold, h)
  if v then
    local _, qh, kh = qparse(v)
    local res = P .. '{g}:qres:' .. qh
    redis.call('ZREM', res, h)
    if kh ~= '' then redis.call('ZREM', res .. ':' .. kh, h) end
    redis.call('HDEL', hold, h)
  end
end
return 'ok'
"""

QUEUE_EXTEND = r"""
-- KEYS: the queue list. ARGV: P, h, token, expires_at, now. Before a heartbeat: extends
-- the lease's reservation to the new expiry (never shortens it: GT). An expired one in
-- a queue that limits places answers 'lost' (the place was given up); in a queue without
-- place limits it is taken again. 'lost': another claim has reserved the run (only an
-- expired reservation can be replaced, so this lease has expired and is being taken
-- over). 'none': no reservation (released by a settle or cancel: the heartbeat fails).
local P, h, token, expires, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local v = redis.call('HGET', P .. '{g}:qhold', h)
if not v then return 'none' end
local tok, qh, kh = qparse(v)
if tok ~= token then return 'lost' end
local res = P .. '{g}:qres:' .. qh
local score = redis.call('ZSCORE', res, h)
local flag = 'GT'
if not (score and tonumber(score) > tonumber(now)) then
  local f = redis.call('HMGET', P .. '{g}:queue:' .. qh, 'conc', 'pkc')
  if f[1] or f[2] then return 'lost' end
  flag = 'CH'
end
redis.call('ZADD', res, flag, expires, h)
if kh ~= '' then redis.call('ZADD', res .. ':' .. kh, flag, expires, h) end
return 'ok'
"""

HEARTBEAT = r"""
-- ARGV: T, h, owner, token, expires_at, now, P (see admit)
local T, h = ARGV[1], ARGV[2]
local problem = lease_problem(T, h, ARGV[3], ARGV[4])
if problem then return {problem} end
local f = redis.call('HMGET', rk(T, h), 'l_exp', 'q')
-- An expired lease gave its place up: taking it back would be a claim without the
-- claim's checks (another run may hold the place by now).
if tonumber(f[1]) <= tonumber(ARGV[6]) and holds_places(ARGV[7], f[2]) then return {'lost'} end
redis.call('HSET', rk(T, h), 'l_exp', ARGV[5])
sync(T, h)
return {'ok'}
"""

UPSERT_QUEUE = r"""
-- KEYS: the queue's hash, the queue list. ARGV: queue hex, name, concurrency,
-- per-key concurrency, rate count, rate period ('' = none), updated_at, wake channel.
-- Replaces the limits and keeps the rate window (re-declaring a queue at start-up
-- must not hand out a second allowance).
local key = KEYS[1]
redis.call('HDEL', key, 'conc', 'pkc', 'rc', 'rp')
redis.call('HSET', key, 'name', ARGV[2], 'updated', ARGV[7])
for j, name in ipairs({'conc', 'pkc', 'rc', 'rp'}) do
  if ARGV[2 + j] ~= '' then redis.call('HSET', key, name, ARGV[2 + j]) end
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
-- More room (a raised or removed limit) may make runs claimable.
redis.call('PUBLISH', ARGV[8], '')
return redis.call('HGETALL', key)
"""

LIST_QUEUES = r"""
-- KEYS: the queue list. ARGV: the start of a queue's hash key. Every queue's fields,
-- by name (hex keeps the names' order).
local out = {}
for i, qh in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[i] = redis.call('HGETALL', ARGV[1] .. qh)
end
return out
"""


APPEND_EVENTS = r"""
-- ARGV: T, h, owner, token, then the append arguments (see append)
local T, h = ARGV[1], ARGV[2]
local problem = lease_problem(T, h, ARGV[3], ARGV[4])
if problem then return {problem} end
local _, index = append(T, h, 5)
if not _ then return {'conflict', index} end
return {'ok', index}
"""

SETTLE_RUN = r"""
-- ARGV: T, h, owner, token, the append arguments, then status, output, error,
-- w_kind, w_step, w_key, w_wake, w_meta
local T, h = ARGV[1], ARGV[2]
local k = rk(T, h)
local problem = lease_problem(T, h, ARGV[3], ARGV[4])
if problem then return {problem} end
local now = ARGV[6]
local i, index = append(T, h, 5)
if not i then return {'conflict', index} end
local status = ARGV[i]
redis.call('HDEL', k, unpack(LEASE_FIELDS))
if status == 'queued' then
  make_queued(T, h, now)
elseif status == 'paused' then
  local wkind, wstep, wkey, wwake, wmeta =
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local matched = false
  local inbox = open_inbox(T, h)
  for j = 1, #inbox, 2 do
    if matches(wkind, wstep, wkey, wwake ~= '', inbox[j], inbox[j + 1]) then
      matched = true
      break
    end
  end
  if matched then
    make_queued(T, h, now)
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
sync(T, h)
if TERMINAL[status] then tell_parent(T, h, now) end
return {'ok', run_of(T, h)}
"""

DELIVER = r"""
-- ARGV: T, h, inbox field, record, now
local T, h = ARGV[1], ARGV[2]
local f = redis.call('HMGET', rk(T, h), 'status', 'w_kind', 'w_step', 'w_key', 'w_wake')
if not f[1] then return {'notfound'} end
local seen = redis.call('HGET', ik(T, h), ARGV[3])
if seen then
  return {'duplicate', seen, redis.call('SISMEMBER', ck(T, h), ARGV[3])}
end
if TERMINAL[f[1]] then return {'closed', run_of(T, h)} end
redis.call('HSET', ik(T, h), ARGV[3], ARGV[4])
if f[1] == 'paused' and matches(f[2], f[3], f[4], f[5], ARGV[3], ARGV[4]) then
  make_queued(T, h, ARGV[5])
  sync(T, h)
  return {'delivered', run_of(T, h)}
end
return {'buffered', run_of(T, h)}
"""

FIRE_DUE_TIMERS = r"""
-- ARGV: n, tags, now, limit, dry, m, m members (see named). Fires (dry: lists) the
-- `limit` earliest due timers in (wake_at, run_id) order; returns
-- {wake_at, h, run_id, field, record} per timer.
local tags, a = buckets()
local now, limit, dry = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
local only = named(a + 4)
local c = {}
if only then
  local T = tags[1]
  for _, h in ipairs(only) do
    local score = redis.call('ZSCORE', gk(T, 'timers'), h)
    if score and tonumber(score) <= tonumber(now) and alive(T, h) then
      c[#c + 1] = {tonumber(score), h, T}
    end
  end
else
  for _, T in ipairs(tags) do
    local due = redis.call('ZRANGEBYSCORE', gk(T, 'timers'), '-inf', now, 'WITHSCORES',
      'LIMIT', 0, limit)
    for i = 1, #due, 2 do
      if alive(T, due[i]) then c[#c + 1] = {tonumber(due[i + 1]), due[i], T} end
    end
  end
end
table.sort(c, by_score_then_id)
local out = {}
for i = 1, math.min(limit, #c) do
  local T, h = c[i][3], c[i][2]
  if dry then
    out[i] = {c[i][1], h}
  else
    local f = redis.call('HMGET', rk(T, h), 'id', 'w_kind', 'w_step', 'w_key', 'w_wake')
    local name = 'null'
    if f[2] == 'signal' then name = cjson.encode(f[4]) end
    -- Built by concatenation: the times are kept as the decimal strings they came as.
    local record = '[' .. name .. ',' .. cjson.encode(f[3]) .. ',' ..
      cjson.encode('{"wake_at":' .. f[5] .. '}') .. ',null,' .. now .. ']'
    local field = 'timer:' .. f[3]
    -- A fresh firing replaces an earlier one of the same step (a loop may sleep on
    -- one step id again and again).
    redis.call('HSET', ik(T, h), field, record)
    redis.call('SREM', ck(T, h), field)
    make_queued(T, h, now)
    sync(T, h)
    out[i] = {c[i][1], h, f[1], field, record}
  end
end
return out
"""

FIRE_DUE_DEADLINES = r"""
-- ARGV: n, tags, now, limit, dry, error, m, m members (see named; the error comes
-- before them here). Ends (dry: lists) the `limit` live runs whose deadline passed
-- earliest, in (deadline_at, run_id) order: each becomes timed_out with `error`, loses
-- its lease, wait and ready time, and gets its deadline entry; then its parent hears
-- of it and its children follow it (tell_parent, cascade). Returns
-- {deadline_at, h, run_id, field, record, the leased runs its cascade ended} per run;
-- {deadline_at, h} for one that an earlier firing's cascade ended meanwhile (not
-- fired: the caller reads on).
local tags, a = buckets()
local now, limit, dry = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
local err = ARGV[a + 4]
local only = named(a + 5)
local c = {}
if only then
  local T = tags[1]
  for _, h in ipairs(only) do
    local score = redis.call('ZSCORE', gk(T, 'deadlines'), h)
    if score and tonumber(score) <= tonumber(now) and alive(T, h) then
      c[#c + 1] = {tonumber(score), h, T}
    end
  end
else
  for _, T in ipairs(tags) do
    local due = redis.call('ZRANGEBYSCORE', gk(T, 'deadlines'), '-inf', now, 'WITHSCORES',
      'LIMIT', 0, limit)
    for i = 1, #due, 2 do
      if alive(T, due[i]) then c[#c + 1] = {tonumber(due[i + 1]), due[i], T} end
    end
  end
end
table.sort(c, by_score_then_id)
local out = {}
for i = 1, math.min(limit, #c) do
  local T, h = c[i][3], c[i][2]
  if dry or TERMINAL[redis.call('HGET', rk(T, h), 'status')] then
    -- Acting, a run already ended (by the cascade of an earlier firing in this call)
    -- comes back as {deadline_at, h} only: the caller asks again for the rest.
    out[i] = {c[i][1], h}
  else
    local f = redis.call('HMGET', rk(T, h), 'id', 'deadline')
    -- Built by concatenation: the times are kept as the decimal strings they came as.
    local record = '[null,null,' .. cjson.encode('{"deadline_at":' .. f[2] .. '}') ..
      ',null,' .. now .. ']'
    local field = 'deadline:deadline'
    redis.call('HSET', ik(T, h), field, record)
    redis.call('SREM', ck(T, h), field)
    end_run(T, h, 'timed_out', err, now)
    tell_parent(T, h, now)
    out[i] = {c[i][1], h, f[1], field, record, cascade(T, h, 'timed_out', now)}
  end
end
return out
"""

UPSERT_SCHEDULE = r"""
-- ARGV: T, schedule hex, schedule_id, workflow_id, version, spec, overlap, input,
-- enabled ('1'/'0'), now, first tick after now
local T = ARGV[1]
local key = gk(T, 'sched:' .. ARGV[2])
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
redis.call('ZADD', gk(T, 'schedules'), 0, ARGV[2])
if enabled == '1' then
  redis.call('ZADD', gk(T, 'sched_due'), redis.call('HGET', key, 'next'), ARGV[2])
else
  redis.call('ZREM', gk(T, 'sched_due'), ARGV[2])
end
return redis.call('HGETALL', key)
"""

DELETE_SCHEDULE = r"""
-- ARGV: T, schedule hex
local T = ARGV[1]
redis.call('ZREM', gk(T, 'schedules'), ARGV[2])
redis.call('ZREM', gk(T, 'sched_due'), ARGV[2])
return redis.call('DEL', gk(T, 'sched:' .. ARGV[2]))
"""

FIRE_DUE_SCHEDULES = r"""
-- ARGV: n, tags, now, limit, dry, then per due candidate (in (next_fire_at, id) order)
-- five values: its bucket's position in tags, schedule hex, the fire_at it was read
-- with, its spec, its next tick after now (computed by the caller: cron needs Python).
-- A candidate whose schedule changed since it was read is passed over, so each tick
-- fires exactly once under concurrent callers. The runs a schedule fires
-- (<schedule id>@<fire_at>) live in the schedule's bucket (keys.run_placement).
-- Returns {schedule_id, fire_at, outcome, run_id or false, next} per tick (dry: the
-- outcome it would have).
local tags, a = buckets()
local now, limit, dry = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
local pad = string.rep('0', 15 - #now) .. now
local out = {}
local i = a + 4
while i <= #ARGV and #out < limit do
  local T = tags[tonumber(ARGV[i])]
  local s, fire_at, spec, after = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local key = gk(T, 'sched:' .. s)
  local f = redis.call('HMGET', key, 'id', 'wf', 'ver', 'spec', 'overlap', 'input', 'enabled',
    'next', 'last_run')
  -- The candidate's hash may have been read after another caller advanced it: the
  -- tick must still be the one read and still be due.
  if f[1] and f[7] == '1' and f[8] == fire_at and f[4] == spec
    and tonumber(fire_at) <= tonumber(now) then
    local busy = false
    if f[9] then
      local st = redis.call('HGET', rk(T, hex(f[9])), 'status')
      busy = st and not TERMINAL[st] or false
    end
    -- A buffered tick stays due without blocking the schedules behind it.
    if not (f[5] == 'buffer_one' and busy) then
      local skipped = f[5] == 'skip' and busy
      local run_id = f[1] .. '@' .. fire_at
      if dry then
        out[#out + 1] = {f[1], fire_at, skipped and 'skipped' or 'fired', false, after}
      else
        redis.call('HSET', key, 'next', after)
        redis.call('ZADD', gk(T, 'sched_due'), after, s)
        if skipped then
          out[#out + 1] = {f[1], fire_at, 'skipped', false, after}
        else
          local h = hex(run_id)
          if redis.call('EXISTS', rk(T, h)) == 0 then
            create_run(T, h, run_id, f[2], f[3] or '', f[6] or '', now, pad .. ':' .. h,
              hex(f[2]))
          end
          redis.call('HSET', key, 'last_fired', fire_at, 'last_run', run_id)
          out[#out + 1] = {f[1], fire_at, 'fired', run_id, after}
        end
      end
    end
  end
end
return out
"""

READ_TIMELINE = r"""
-- ARGV: T, h, from, to: the run's fields and events from..to, one consistent snapshot
-- (a script rather than MULTI/EXEC, which redis-py's cluster pipeline mishandles).
local T, h = ARGV[1], ARGV[2]
local run = run_of(T, h)
if #run == 0 then return {run, {}} end
return {run, redis.call('LRANGE', ek(T, h), ARGV[3], ARGV[4])}
"""

READ_INBOX = r"""
-- ARGV: T, h: every inbox entry and the consumed fields, one consistent snapshot.
local T, h = ARGV[1], ARGV[2]
return {redis.call('HGETALL', ik(T, h)), redis.call('SMEMBERS', ck(T, h))}
"""
