#!lua name=semantest_ledger_VERSION
-- The command ledger on Redis: every state change of a command is one of these functions, so
-- it checks the state it expects, writes the new state and appends the deliveries it causes, all
-- in one atomic step and one round trip. docs/architecture.md describes each function.
--
-- VERSION is replaced by a hash of this file when it is loaded: a new version loads beside the
-- old one (functions are named `<name>_VERSION`), so a rolling upgrade never calls a function of
-- the other version. Every function takes the key prefix as ARGV[1]. Keys are built here from validated ids (the
-- gateway refuses ids outside protocol.ID_PATTERN); schedule members are JSON arrays, so no value
-- can split another. Timestamps come from the caller (epoch ms), so both buses share one clock
-- rule: the caller's.

local INBOX_GROUP = 'gw'
local INBOX_MAXLEN = 100000
local AFFINITY_MS = 86400000
local PULL_ON_REGISTER = 100
local TARGETED_SCAN = 100

local function enc(value) return cjson.encode(value) end

local function fields(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    if values[i] then out[name] = values[i] end
  end
  return out
end

local function stream_id(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(ms or 0), tonumber(seq or 0)
end

local function after(a, b)
  local am, as = stream_id(a)
  local bm, bs = stream_id(b)
  return am > bm or (am == bm and as > bs)
end

-- The layout: one table of key names, the same as semantest/protocol.py.
local function layout(P, T)
  return {
    cmd = function(id) return P .. 'cmd:' .. T .. ':' .. id end,
    ext = function(e) return P .. 'ext:' .. T .. ':' .. e end,
    exts = P .. 'exts:' .. T,
    running = function(e) return P .. 'extcmds:' .. T .. ':' .. e end,
    owner = function(e) return P .. 'ext-owner:' .. T .. ':' .. e end,
    queue = function(typ) return P .. 'queue:' .. T .. ':' .. typ end,
    queue_for = function(e) return P .. 'queue-for:' .. T .. ':' .. e end,
    queued_types = P .. 'queue-types:' .. T,
    queued_by = P .. 'queued-by:' .. T,
    stats = P .. 'stats:' .. T,
    affinity = function(s) return P .. 'session-ext:' .. T .. ':' .. s end,
    session_sockets = function(s) return P .. 'session-sockets:' .. T .. ':' .. s end,
    channel = function(c) return P .. 'chan:' .. T .. ':' .. c end,
    channel_gateways = function(c) return P .. 'chan-gws:' .. T .. ':' .. c end,
    inbox = function(gw) return P .. 'gw:' .. gw end,
    gateway_extensions = function(gw) return P .. 'gw-exts:' .. gw end,
    deadlines = P .. 'deadlines',
    grace = P .. 'grace',
    gateways = P .. 'gateways',
  }
end

local function deliver(K, gw, body)
  return redis.call('XADD', K.inbox(gw), 'MAXLEN', '~', INBOX_MAXLEN, '*', 'd', body)
end

local function to_socket(K, gw, sid, event, data)
  deliver(K, gw, '{"t":"socket","sids":' .. enc({sid}) .. ',"event":' .. enc(event)
    .. ',"data":' .. data .. '}')
end

-- Every socket attached to the session with read, except the origin: one entry per gateway.
local function to_session(K, session, skip_gw, skip_sid, event, data)
  if session == nil or session == '' then return end
  local by_gateway, order = {}, {}
  for _, member in ipairs(redis.call('SMEMBERS', K.session_sockets(session))) do
    local gw, sid, perms = string.match(member, '^([^\031]*)\031([^\031]*)\031([^\031]*)$')
    if gw and string.find(',' .. perms .. ',', ',read,', 1, true)
        and not (gw == skip_gw and sid == skip_sid) then
      if not by_gateway[gw] then by_gateway[gw] = {}; table.insert(order, gw) end
      table.insert(by_gateway[gw], sid)
    end
  end
  for _, gw in ipairs(order) do
    deliver(K, gw, '{"t":"socket","sids":' .. enc(by_gateway[gw]) .. ',"event":'
      .. enc(event) .. ',"data":' .. data .. '}')
  end
end

local function to_channel(K, T, channel, message, now, history)
  local kept = '{"channel":' .. enc(channel) .. ',"message":' .. message .. ',"timestamp":'
    .. now .. ',"publisher":"semantest"}'
  local offset = redis.call('XADD', K.channel(channel), 'MAXLEN', '~', math.max(history, 1),
    '*', 'd', kept)
  local event = string.sub(kept, 1, -2) .. ',"offset":' .. enc(offset) .. '}'
  for _, gw in ipairs(redis.call('SMEMBERS', K.channel_gateways(channel))) do
    deliver(K, gw, '{"t":"channel","tenant":' .. enc(T) .. ',"channel":' .. enc(channel)
      .. ',"data":' .. event .. '}')
  end
end

local COMMAND_FIELDS = {'st', 'subj', 'typ', 'sess', 'tgt', 'ext', 'gw', 'eid', 'rcv', 'ogw',
  'osid', 'acc', 'dl', 'echo', 'cmd', 'res'}

-- Send a command to an extension's gateway and record where the delivery waits. `again` marks
-- a redelivery the extension may have seen (`redelivered: true`: it runs an id only once).
local function send_command(K, T, id, c, ext, gw, again)
  local data = c.cmd
  if again then data = string.sub(data, 1, -2) .. ',"redelivered":true}' end
  local body = '{"t":"extension","tenant":' .. enc(T) .. ',"ext":' .. enc(ext)
    .. ',"event":"command","data":' .. data .. ',"origin":{"gw":' .. enc(c.ogw) .. ',"sid":'
    .. enc(c.osid) .. '}}'
  local eid = deliver(K, gw, body)
  redis.call('HSET', K.cmd(id), 'gw', gw, 'eid', eid)
end

local function dispatch(K, T, id, c, ext, gw)
  redis.call('HSET', K.cmd(id), 'st', 'dispatched', 'ext', ext)
  redis.call('SADD', K.running(ext), id)
  if c.sess and c.sess ~= '' then
    redis.call('SET', K.affinity(c.sess), ext, 'PX', AFFINITY_MS)
  end
  c.st, c.ext = 'dispatched', ext
  send_command(K, T, id, c, ext, gw)
end

-- The extension can take one more command of this type: its gateway, else nil.
local function can_take(K, ext, typ)
  local r = redis.call('HMGET', K.ext(ext), 'gw', 'max', 'c:*', 'c:' .. typ)
  if not r[1] or not (r[3] or r[4]) then return nil, nil end
  local load = redis.call('SCARD', K.running(ext))
  local limit = tonumber(r[2] or 0)
  if limit > 0 and load >= limit then return nil, nil end
  return r[1], load
end

-- Session affinity first, then a named target, then the capable extension with least work.
local function place(K, c, target)
  if c.sess and c.sess ~= '' then
    local sticky = redis.call('GET', K.affinity(c.sess))
    if sticky then
      local gw = can_take(K, sticky, c.typ)
      if gw then return sticky, gw end
    end
  end
  if target ~= '' then
    local gw = can_take(K, target, c.typ)
    if gw then return target, gw end
    return nil, nil
  end
  local best, best_gw, best_load = nil, nil, nil
  local members = redis.call('SMEMBERS', K.exts)
  table.sort(members)
  for _, ext in ipairs(members) do
    if redis.call('EXISTS', K.ext(ext)) == 0 then
      redis.call('SREM', K.exts, ext)
    else
      local gw, load = can_take(K, ext, c.typ)
      if gw and (best_load == nil or load < best_load) then
        best, best_gw, best_load = ext, gw, load
      end
    end
  end
  return best, best_gw
end

local function dequeue(K, id, c)
  if c.tgt and c.tgt ~= '' then
    redis.call('ZREM', K.queue_for(c.tgt), id)
  else
    redis.call('ZREM', K.queue(c.typ), id)
    if redis.call('ZCARD', K.queue(c.typ)) == 0 then
      redis.call('SREM', K.queued_types, c.typ)
    end
  end
  if redis.call('HINCRBY', K.queued_by, c.subj, -1) <= 0 then
    redis.call('HDEL', K.queued_by, c.subj)
  end
  redis.call('HINCRBY', K.stats, 'queued', -1)
end

-- Queued commands this extension can take now: those waiting for it by name first, then the
-- oldest of each command type it runs (one queue per type: a type nobody runs blocks nothing).
local function pull(K, T, ext, gw, most)
  local taken = 0
  for _, id in ipairs(redis.call('ZRANGE', K.queue_for(ext), 0, TARGETED_SCAN - 1)) do
    local c = fields(K.cmd(id), COMMAND_FIELDS)
    if c.st ~= 'queued' then
      redis.call('ZREM', K.queue_for(ext), id)
    elseif taken < most and can_take(K, ext, c.typ) then
      dequeue(K, id, c)
      dispatch(K, T, id, c, ext, gw)
      taken = taken + 1
    end
  end
  local types = redis.call('SMEMBERS', K.queued_types)
  table.sort(types)
  for _, typ in ipairs(types) do
    while taken < most do
      if not can_take(K, ext, typ) then break end
      local head = redis.call('ZRANGE', K.queue(typ), 0, 0)
      if #head == 0 then break end
      local id = head[1]
      local c = fields(K.cmd(id), COMMAND_FIELDS)
      if c.st == 'queued' then
        dequeue(K, id, c)
        dispatch(K, T, id, c, ext, gw)
        taken = taken + 1
      else
        redis.call('ZREM', K.queue(typ), id)
        if redis.call('ZCARD', K.queue(typ)) == 0 then redis.call('SREM', K.queued_types, typ) end
      end
    end
  end
  return taken
end

local function member(...) return enc({...}) end

-- End a command once: record the result, free what it held, deliver it to the origin, the
-- session's readers and the system channels; free capacity takes queued work. → duration ms
local function finish(K, T, id, c, now, o)
  -- The result, and what is kept of it: the same without data and error when too large.
  local head = '{"id":' .. enc(id) .. ',"success":' .. (o.success and 'true' or 'false')
  local tail = ((c.echo and c.echo ~= '') and (',' .. c.echo) or '')
    .. ',"metadata":{"duration":' .. (now - tonumber(c.acc)) .. ',"timestamp":' .. now
    .. ',"extension":' .. enc(c.ext or '')
  local body = ''
  if o.data and o.data ~= '' then body = body .. ',"data":' .. o.data end
  if o.error and o.error ~= '' then body = body .. ',"error":' .. o.error end
  local result = head .. body .. tail .. '}}'
  local kept = result
  if #result > o.max_result then kept = head .. tail .. ',"dataDropped":true}}' end
  local key = K.cmd(id)
  redis.call('HSET', key, 'st', 'done', 'res', kept)
  redis.call('HDEL', key, 'cmd')
  redis.call('PEXPIRE', key, o.retention)
  redis.call('ZREM', K.deadlines, member(T, id))
  redis.call('HINCRBY', K.stats, 'inflight', -1)
  if c.st == 'queued' then
    dequeue(K, id, c)
  elseif c.ext and c.ext ~= '' then
    redis.call('SREM', K.running(c.ext), id)
    if o.tell_extension then
      local gw = redis.call('HGET', K.ext(c.ext), 'gw')
      if gw then
        deliver(K, gw, '{"t":"extension","tenant":' .. enc(T) .. ',"ext":' .. enc(c.ext)
          .. ',"event":"cancel","data":{"id":' .. enc(id) .. '}}')
      end
    end
  end
  to_socket(K, c.ogw, c.osid, 'result', result)
  to_session(K, c.sess, c.ogw, c.osid, 'result', result)
  local channel = nil
  if not o.success then channel = 'errors'
  elseif c.typ == 'DOWNLOAD_IMAGE' or o.download then channel = 'downloads' end
  if channel then
    to_channel(K, T, channel, '{"type":' .. enc(c.typ) .. ',' .. string.sub(result, 2), now,
      o.history)
  end
  if c.ext and c.ext ~= '' and c.st == 'dispatched' then
    local gw = redis.call('HGET', K.ext(c.ext), 'gw')
    if gw then pull(K, T, c.ext, gw, 1) end
  end
  return now - tonumber(c.acc)
end

local function ending(ARGV, first)
  return {retention = tonumber(ARGV[first]), max_result = tonumber(ARGV[first + 1]),
    history = tonumber(ARGV[first + 2])}
end

local function in_list(json, value)
  if not value or value == '' or not json or json == '' then return false end
  for _, item in ipairs(cjson.decode(json)) do
    if item == value then return true end
  end
  return false
end

-- accept(P, T, subject, origin gw, origin sid, id, type, session, target, deadline, now,
--        command JSON, echo JSON fragment, max queued per principal,
--        sessions the caller may read (JSON array))
-- → {"dispatched", ext} | {"queued"} | {"running"} | {"done"} | {"taken"} | {"full"}
local function accept(_, ARGV)
  local P, T, subj, ogw, osid, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local K = layout(P, T)
  local key = K.cmd(id)
  local known = fields(key, {'st', 'subj', 'sess', 'res'})
  if known.st then
    -- A re-sent id never runs twice: the sender (or a reader of its session) gets the result,
    -- or becomes the one the result goes to.
    if known.subj ~= subj and not in_list(ARGV[15], known.sess) then return {'taken'} end
    if known.st == 'done' then
      to_socket(K, ogw, osid, 'result', known.res)
      return {'done'}
    end
    redis.call('HSET', key, 'ogw', ogw, 'osid', osid)
    return {'running'}
  end
  local typ, sess, target, dl, now = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]),
    tonumber(ARGV[11])
  local c = {st = 'new', subj = subj, typ = typ, sess = sess, ogw = ogw, osid = osid,
    acc = ARGV[11], dl = ARGV[10], echo = ARGV[13], cmd = ARGV[12]}
  local ext, gw = place(K, c, target)
  if not ext then
    if tonumber(redis.call('HGET', K.queued_by, subj) or 0) >= tonumber(ARGV[14]) then
      return {'full'}
    end
  end
  redis.call('HSET', key, 'st', 'new', 'subj', subj, 'typ', typ, 'sess', sess, 'tgt', target,
    'ogw', ogw, 'osid', osid, 'acc', c.acc, 'dl', c.dl, 'echo', c.echo, 'cmd', c.cmd)
  redis.call('ZADD', K.deadlines, dl, member(T, id))
  redis.call('HINCRBY', K.stats, 'inflight', 1)
  if ext then
    dispatch(K, T, id, c, ext, gw)
    return {'dispatched', ext}
  end
  redis.call('HSET', key, 'st', 'queued')
  if target ~= '' then
    redis.call('ZADD', K.queue_for(target), now, id)
  else
    redis.call('ZADD', K.queue(typ), now, id)
    redis.call('SADD', K.queued_types, typ)
  end
  redis.call('HINCRBY', K.queued_by, subj, 1)
  redis.call('HINCRBY', K.stats, 'queued', 1)
  return {'queued'}
end

-- The extension reporting must hold the command, on the connection now registered for it.
local function held(K, id, ext, sid)
  local c = fields(K.cmd(id), COMMAND_FIELDS)
  if c.st ~= 'dispatched' or c.ext ~= ext then return nil end
  if redis.call('HGET', K.ext(ext), 'sid') ~= sid then return nil end
  return c
end

-- report(P, T, ext, sid, id, success ("1"/"0"), data JSON, error JSON, download ("1"/"0"),
--        now, retention, max result bytes, channel history) → {type, duration} | {}
local function report(_, ARGV)
  local P, T, ext, sid, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local K = layout(P, T)
  local c = held(K, id, ext, sid)
  if not c then return {} end
  local o = ending(ARGV, 11)
  o.success, o.data, o.error, o.download = ARGV[6] == '1', ARGV[7], ARGV[8], ARGV[9] == '1'
  return {c.typ, finish(K, T, id, c, tonumber(ARGV[10]), o)}
end

-- progress(P, T, ext, sid, id, progress event JSON without the echoed fields) → 1 when sent
local function progress(_, ARGV)
  local P, T = ARGV[1], ARGV[2]
  local K = layout(P, T)
  local c = held(K, ARGV[5], ARGV[3], ARGV[4])
  if not c then return 0 end
  local event = ARGV[6]
  if c.echo and c.echo ~= '' then event = string.sub(event, 1, -2) .. ',' .. c.echo .. '}' end
  to_socket(K, c.ogw, c.osid, 'progress', event)
  to_session(K, c.sess, c.ogw, c.osid, 'progress', event)
  return 1
end

-- cancel(P, T, subject, id, sessions the caller may write (JSON array), now, retention,
--        max result bytes, channel history) → {type, duration} | {}
local function cancel(_, ARGV)
  local P, T, subj, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local K = layout(P, T)
  local c = fields(K.cmd(id), COMMAND_FIELDS)
  if not c.st or c.st == 'done' then return {} end
  if c.subj ~= subj and not in_list(ARGV[5], c.sess) then return {} end
  local o = ending(ARGV, 7)
  o.success, o.tell_extension = false, true
  o.error = '{"code":"CANCELLED","message":"cancelled by the client"}'
  return {c.typ, finish(K, T, id, c, tonumber(ARGV[6]), o)}
end

-- Commands of an extension its gateway may never have read: redeliver them to `gw`.
local function read_up_to(K, gw)
  if redis.call('EXISTS', K.inbox(gw)) == 0 then return '0-0' end
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', K.inbox(gw))) do
    if group[2] == INBOX_GROUP then return group[8] end
  end
  return '0-0'
end

-- The commands an extension holds that may never have reached it, sent to it at `gw`:
-- - unsent (handed back), or not read yet by their gateway: taken out of that inbox (it may be
--   dead, or slow) and sent here;
-- - read by their gateway but not acknowledged by the extension: sent again, marked, only to an
--   extension that acknowledges every command (`acks`); for any other, a read command may have
--   reached it, and it is never sent twice.
local function redeliver(K, T, ext, gw, acks)
  local count = 0
  for _, id in ipairs(redis.call('SMEMBERS', K.running(ext))) do
    local c = fields(K.cmd(id), COMMAND_FIELDS)
    if c.st == 'dispatched' and c.ext == ext and not c.rcv then
      local send, again = false, false
      if c.gw == nil or c.gw == '' then
        send = true
      elseif after(c.eid, read_up_to(K, c.gw)) then
        redis.call('XDEL', K.inbox(c.gw), c.eid)
        send = true
      else
        send, again = acks, true
      end
      if send then
        send_command(K, T, id, c, ext, gw, again)
        count = count + 1
      end
    end
  end
  return count
end

-- received(P, T, ext, sid, id): the extension acknowledged the command (it has it).
local function received(_, ARGV)
  local K = layout(ARGV[1], ARGV[2])
  if not held(K, ARGV[5], ARGV[3], ARGV[4]) then return 0 end
  redis.call('HSET', K.cmd(ARGV[5]), 'rcv', '1')
  return 1
end

-- register(P, T, ext, owner subject, gw, sid, max concurrency (0 = none), record JSON (for
--          status), acks ("1": it acknowledges every command), capability...)
-- → {"taken"} | {"ok", redelivered, pulled}
local function register(_, ARGV)
  local P, T, ext, owner, gw, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local K = layout(P, T)
  local holder = redis.call('GET', K.owner(ext))
  if holder and holder ~= owner then return {'taken'} end
  local previous = redis.call('HGET', K.ext(ext), 'gw')
  if previous and previous ~= gw then
    redis.call('SREM', K.gateway_extensions(previous), member(T, ext))
  end
  redis.call('DEL', K.ext(ext))
  local record = {'gw', gw, 'sid', sid, 'owner', owner, 'max', ARGV[7], 'record', ARGV[8]}
  for i = 10, #ARGV do
    table.insert(record, 'c:' .. ARGV[i]); table.insert(record, '1')
  end
  redis.call('HSET', K.ext(ext), unpack(record))
  redis.call('SADD', K.exts, ext)
  redis.call('SADD', K.gateway_extensions(gw), member(T, ext))
  redis.call('SET', K.owner(ext), owner)
  redis.call('ZREM', K.grace, member(T, ext))
  local redelivered = redeliver(K, T, ext, gw, ARGV[9] == '1')
  local pulled = pull(K, T, ext, gw, PULL_ON_REGISTER)
  return {'ok', redelivered, pulled}
end

local function drop_registration(K, T, ext, gw, now, grace)
  redis.call('DEL', K.ext(ext))
  redis.call('SREM', K.exts, ext)
  redis.call('SREM', K.gateway_extensions(gw), member(T, ext))
  redis.call('PEXPIRE', K.owner(ext), math.max(grace, 1))
  if redis.call('SCARD', K.running(ext)) > 0 then
    redis.call('ZADD', K.grace, now + grace, member(T, ext))
  end
end

-- unregister(P, T, ext, sid, now, grace ms) → 1 when this connection was the registered one
local function unregister(_, ARGV)
  local P, T, ext, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local K = layout(P, T)
  local r = redis.call('HMGET', K.ext(ext), 'sid', 'gw')
  if r[1] ~= sid then return 0 end
  drop_registration(K, T, ext, r[2], tonumber(ARGV[5]), tonumber(ARGV[6]))
  return 1
end

-- handback(P, T, ext, id, gw): a gateway read a command for an extension it no longer holds.
local function handback(_, ARGV)
  local P, T, ext, id, from = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local K = layout(P, T)
  local c = fields(K.cmd(id), COMMAND_FIELDS)
  if c.st ~= 'dispatched' or c.ext ~= ext or c.gw ~= from then return 0 end
  local gw = redis.call('HGET', K.ext(ext), 'gw')
  if gw and gw ~= from then
    send_command(K, T, id, c, ext, gw)
    return 1
  end
  redis.call('HSET', K.cmd(id), 'gw', '')
  return 0
end

local function split(entry)
  local ok, pair = pcall(cjson.decode, entry)
  if ok and type(pair) == 'table' and type(pair[1]) == 'string' and type(pair[2]) == 'string' then
    return pair[1], pair[2]
  end
  return nil, nil
end

-- Take the entries of a schedule that are due, each out of the schedule in the same step, and
-- end what `due(K, T, name, ended, o)` says; an entry that cannot be read is dropped and listed.
-- ARGV: P, now, limit, retention, max result bytes, channel history
-- → {ended: {type, code, duration, id, echo}..., unreadable: {member}...}
local function sweep(schedule, due, ARGV)
  local P, now = ARGV[1], tonumber(ARGV[2])
  local o = ending(ARGV, 4)
  o.success, o.now = false, now
  local ended, unreadable = {}, {}
  for _, entry in ipairs(redis.call('ZRANGE', P .. schedule, '-inf', now, 'BYSCORE',
      'LIMIT', 0, tonumber(ARGV[3]))) do
    redis.call('ZREM', P .. schedule, entry)
    local T, name = split(entry)
    if T then
      due(layout(P, T), T, name, ended, o)
    else
      table.insert(unreadable, entry)
    end
  end
  return {ended, unreadable}
end

local function failure(code, text)
  return '{"code":"' .. code .. '","message":"' .. text .. '"}'
end

-- expire: commands past their deadline end TIMEOUT (placed) or NO_EXTENSION (never placed).
local function expire(_, ARGV)
  return sweep('deadlines', function(K, T, id, ended, o)
    local c = fields(K.cmd(id), COMMAND_FIELDS)
    if not c.st or c.st == 'done' then return end
    local code, text = 'TIMEOUT', 'the command timed out'
    if c.st ~= 'dispatched' then
      code, text = 'NO_EXTENSION', 'no capable extension connected before the deadline'
    end
    o.error, o.tell_extension = failure(code, text), true
    table.insert(ended, {c.typ, code, finish(K, T, id, c, o.now, o), id, c.echo or ''})
  end, ARGV)
end

-- expire_grace: an extension gone past its grace period; its commands end
-- EXTENSION_DISCONNECTED.
local function expire_grace(_, ARGV)
  return sweep('grace', function(K, T, ext, ended, o)
    if redis.call('EXISTS', K.ext(ext)) == 1 then return end  -- it came back in time
    o.error, o.tell_extension = failure('EXTENSION_DISCONNECTED',
      'the extension disconnected and did not come back'), false
    for _, id in ipairs(redis.call('SMEMBERS', K.running(ext))) do
      local c = fields(K.cmd(id), COMMAND_FIELDS)
      if c.st == 'dispatched' and c.ext == ext then
        table.insert(ended, {c.typ, 'EXTENSION_DISCONNECTED', finish(K, T, id, c, o.now, o),
          id, c.echo or ''})
      else
        redis.call('SREM', K.running(ext), id)
      end
    end
  end, ARGV)
end

-- heartbeat(P, gw, now): this gateway is alive.
-- → 0 when the gateway was not known (new, or buried while it was only slow): it must register
-- its extensions again. Its inbox loses the expiry a burial gave it.
local function heartbeat(_, ARGV)
  local known = redis.call('ZSCORE', ARGV[1] .. 'gateways', ARGV[2])
  redis.call('ZADD', ARGV[1] .. 'gateways', tonumber(ARGV[3]), ARGV[2])
  redis.call('PERSIST', ARGV[1] .. 'gw:' .. ARGV[2])
  return known and 1 or 0
end

-- bury(P, dead_before, now, grace, retention): gateways silent since `dead_before` are gone;
-- their extensions get the grace period of a clean disconnect. Also a gateway's own clean exit.
local function bury(_, ARGV)
  local P, dead_before, now, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
    tonumber(ARGV[4])
  local buried = 0
  for _, gw in ipairs(redis.call('ZRANGE', P .. 'gateways', '-inf', dead_before, 'BYSCORE')) do
    local extensions = P .. 'gw-exts:' .. gw
    for _, entry in ipairs(redis.call('SMEMBERS', extensions)) do
      local T, ext = split(entry)
      if T then
        local K = layout(P, T)
        if redis.call('HGET', K.ext(ext), 'gw') == gw then
          drop_registration(K, T, ext, gw, now, grace)
        end
      end
    end
    redis.call('DEL', extensions)
    redis.call('ZREM', P .. 'gateways', gw)
    -- Keep the dead inbox long enough to tell what it read, then let it go.
    redis.call('PEXPIRE', P .. 'gw:' .. gw, grace + tonumber(ARGV[5]))
    buried = buried + 1
  end
  return buried
end

redis.register_function('accept_VERSION', accept)
redis.register_function('report_VERSION', report)
redis.register_function('progress_VERSION', progress)
redis.register_function('cancel_VERSION', cancel)
redis.register_function('register_VERSION', register)
redis.register_function('unregister_VERSION', unregister)
redis.register_function('handback_VERSION', handback)
redis.register_function('received_VERSION', received)
redis.register_function('expire_VERSION', expire)
redis.register_function('expire_grace_VERSION', expire_grace)
redis.register_function('heartbeat_VERSION', heartbeat)
redis.register_function('bury_VERSION', bury)
