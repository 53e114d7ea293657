/* SPDX-License-Identifier: MIT */
/* The Lua scripts of the Redis engine. Each runs atomically in Redis: a
 * publication's offset is assigned, stored and published in one step, so
 * every node sees a channel's publications in offset order and a history
 * read never races a publication. Keys of one channel share the hash tag
 * {channel}. Loaded with SCRIPT LOAD when a command connection comes up,
 * then called by SHA. */
#ifndef SRV_REDIS_SCRIPTS_H
#define SRV_REDIS_SCRIPTS_H

/* KEYS: 1 stream, 2 meta, 3 idempotency key (used when ARGV[12] is "1"; all
 * four share the channel's hash tag, as a cluster requires), 4 PUB/SUB channel.
 * ARGV: 1 data, 2 info, 3 tags, 4 history_size, 5 history_ttl ms,
 * 6 meta ttl ms, 7 a new epoch (used if the stream is created), 8 the
 * idempotency window ms, 9 "1": send the previous payload (delta),
 * 10 "1": keep history, 11 flags (delta bits, passed on to the nodes),
 * 12 "1": an idempotency key is given.
 * Returns {"P", "<offset> <epoch>"} or, for a key seen before,
 * {"D", "<offset> <epoch>"} (nothing published). */
#define REDIS_SCRIPT_PUBLISH                                                    \
  "if ARGV[12] == '1' then\n"                                                  \
  "  local v = redis.call('get', KEYS[3])\n"                                   \
  "  if v then return {'D', v} end\n"                                          \
  "end\n"                                                                      \
  "local off, epoch, prev = 0, '-', ''\n"                                      \
  "if ARGV[10] == '1' then\n"                                                  \
  "  epoch = redis.call('hget', KEYS[2], 'e')\n"                               \
  "  if not epoch then\n"                                                      \
  "    epoch = ARGV[7]\n"                                                      \
  "    redis.call('del', KEYS[1])\n"                                           \
  "    redis.call('hset', KEYS[2], 'e', epoch, 't', 0)\n"                      \
  "  end\n"                                                                    \
  "  local top = tonumber(redis.call('hget', KEYS[2], 't') or '0')\n"          \
  "  if ARGV[9] == '1' and top > 0 then\n"                                     \
  "    local last = redis.call('xrevrange', KEYS[1], '+', '-', 'COUNT', 1)\n"  \
  "    if #last > 0 and last[1][1] == top .. '-1' then\n"                      \
  "      local f = last[1][2]\n"                                               \
  "      for i = 1, #f, 2 do if f[i] == 'd' then prev = f[i + 1] end end\n"    \
  "    end\n"                                                                  \
  "  end\n"                                                                    \
  "  off = redis.call('hincrby', KEYS[2], 't', 1)\n"                           \
  "  redis.call('pexpire', KEYS[2], ARGV[6])\n"                                \
  "  redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[4], off .. '-1', 'd', ARGV[1],"\
  " 'i', ARGV[2], 'g', ARGV[3])\n"                                             \
  "  redis.call('pexpire', KEYS[1], ARGV[5])\n"                                \
  "end\n"                                                                      \
  "local msg = 'P ' .. ARGV[11] .. ' ' .. off .. ' ' .. epoch .. ' ' ..\n"     \
  "  #ARGV[1] .. ' ' .. #ARGV[2] .. ' ' .. #ARGV[3] .. ' ' .. #prev .. '\\n'" \
  " .. ARGV[1] .. ARGV[2] .. ARGV[3] .. prev\n"                                \
  "redis.call('publish', KEYS[4], msg)\n"                                      \
  "local res = off .. ' ' .. epoch\n"                                          \
  "if ARGV[12] == '1' then redis.call('set', KEYS[3], res, 'PX', ARGV[8]) end\n" \
  "return {'P', res}\n"

/* KEYS: 1 stream, 2 meta. ARGV: 1 a new epoch (if the stream is created),
 * 2 meta ttl ms, 3 "1": reverse, 4 "1": bounded, 5 the bound offset,
 * 6 limit (0: position only).
 * Returns {top, epoch, first stored offset, {{id, {field, value, ..}}, ..}}. */
#define REDIS_SCRIPT_READ                                                       \
  "local epoch = redis.call('hget', KEYS[2], 'e')\n"                           \
  "if not epoch then\n"                                                        \
  "  epoch = ARGV[1]\n"                                                        \
  "  redis.call('del', KEYS[1])\n"                                             \
  "  redis.call('hset', KEYS[2], 'e', epoch, 't', 0)\n"                        \
  "  redis.call('pexpire', KEYS[2], ARGV[2])\n"                                \
  "end\n"                                                                      \
  "local top = tonumber(redis.call('hget', KEYS[2], 't') or '0')\n"            \
  "local first = top + 1\n"                                                    \
  "local oldest = redis.call('xrange', KEYS[1], '-', '+', 'COUNT', 1)\n"       \
  "if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end\n" \
  "local items = {}\n"                                                         \
  "local limit = tonumber(ARGV[6])\n"                                          \
  "if limit > 0 then\n"                                                        \
  "  if ARGV[3] == '0' then\n"                                                 \
  "    local from = '-'\n"                                                     \
  "    if ARGV[4] == '1' then from = '(' .. ARGV[5] .. '-1' end\n"             \
  "    items = redis.call('xrange', KEYS[1], from, '+', 'COUNT', limit)\n"     \
  "  else\n"                                                                   \
  "    local to = '+'\n"                                                       \
  "    if ARGV[4] == '1' then to = '(' .. ARGV[5] .. '-1' end\n"               \
  "    items = redis.call('xrevrange', KEYS[1], to, '-', 'COUNT', limit)\n"    \
  "  end\n"                                                                    \
  "end\n"                                                                      \
  "return {top, epoch, first, items}\n"

/* KEYS: 1 presence zset (client -> expiry ms), 2 presence hash (client ->
 * ClientInfo JSON). ARGV: 1 "1" stats only. Expired entries go first.
 * Returns the hash as a flat list, or {clients, users} for stats. */
#define REDIS_SCRIPT_PRESENCE                                                   \
  "local now = redis.call('time')\n"                                           \
  "local ms = now[1] * 1000 + math.floor(now[2] / 1000)\n"                     \
  "local gone = redis.call('zrangebyscore', KEYS[1], '-inf', ms)\n"           \
  "for _, c in ipairs(gone) do redis.call('hdel', KEYS[2], c) end\n"           \
  "redis.call('zremrangebyscore', KEYS[1], '-inf', ms)\n"                      \
  "local all = redis.call('hgetall', KEYS[2])\n"                               \
  "if ARGV[1] ~= '1' then return all end\n"                                    \
  "local users, n, clients = {}, 0, 0\n"                                       \
  "for i = 2, #all, 2 do\n"                                                    \
  "  clients = clients + 1\n"                                                  \
  "  local ok, v = pcall(cjson.decode, all[i])\n"                              \
  "  local u = ok and v.user or ''\n"                                          \
  "  if not users[u] then users[u] = true; n = n + 1 end\n"                    \
  "end\n"                                                                      \
  "return {clients, n}\n"

#endif
