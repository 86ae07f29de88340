// Load generator for one benchmark step, driving any peer with the official socket.io-client
// (or raw `ws` frames for the stream relay, which has no Socket.IO).
//
//   node loadgen.mjs '<json config>'     -> prints one line "RESULT <json>" and exits
//
// mode "closed": `clients` clients each keep `inflight` commands in flight against `extensions`
//   extensions that answer at once (optionally `progress` progress events first, after
//   `serviceMs`). Round trip = client emit -> `result` received. Reports commands/s, p50/p95/p99,
//   errors by code, server CPU µs per command (/proc of `pids`), server and loadgen CPU %.
// mode "idle": opens `connections` client connections, `concurrency` handshakes at a time;
//   reports connections accepted per second and server RSS growth per idle connection.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createClient } from 'redis';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { cpuSeconds, machineCpu, rssKiB, sleep } from './lib/procs.mjs';

const cfg = {
  transport: 'sio', clientUrl: null, extUrl: null, pids: [], mode: 'closed',
  procs: [], clients: 1, extensions: 1, inflight: 1, payload: 256, progress: 0, serviceMs: 0,
  warmupMs: 1000, measureMs: 3000, cmdTimeoutMs: 10000, connections: 100, concurrency: 100,
  settleMs: 2000, connectTimeoutMs: 10000,
  ...JSON.parse(process.argv[2] ?? '{}'),
};
// A hard stop, whatever happens: the step's own time plus a margin.
setTimeout(() => { console.error('loadgen: hard time limit reached'); process.exit(3); },
  cfg.warmupMs + cfg.measureMs + cfg.settleMs + 4 * cfg.connectTimeoutMs + 2 * cfg.cmdTimeoutMs
    + 30000).unref();

/** One connection with the same small interface for both transports. */
function connect(url, auth) {
  return new Promise((resolve, reject) => {
    const handlers = {};
    if (cfg.transport === 'ws') {
      const q = new URLSearchParams({ role: auth.role, extensionId: auth.extensionId ?? '' });
      const ws = new WebSocket(`${url}/ws?${q}`);
      const acks = [];
      ws.on('message', (raw) => {
        const m = JSON.parse(raw);
        if (m.t === 'ack') acks.shift()?.(m);
        else if (m.t === 'result') handlers.result?.(m.r);
        else if (m.t === 'progress') handlers.progress?.(m.p);
        else if (m.t === 'command') handlers.command?.(m.c);
      });
      ws.on('close', () => handlers.disconnect?.());
      ws.on('open', () => resolve({
        on: (ev, fn) => { handlers[ev] = fn; },
        command: (cmd, ack) => { acks.push(ack); ws.send(JSON.stringify({ t: 'command', c: cmd })); },
        reply: (kind, body) => ws.send(JSON.stringify(kind === 'result'
          ? { t: 'result', r: body } : { t: 'progress', p: body })),
        close: () => ws.close(),
      }));
      ws.on('error', reject);
      return;
    }
    const socket = io(url, {
      transports: ['websocket'], forceNew: true, reconnection: false, auth,
      timeout: cfg.connectTimeoutMs,
    });
    socket.once('connect', () => resolve({
      on: (ev, fn) => socket.on(ev, fn),
      command: (cmd, ack) => socket.emit('command', cmd, ack),
      reply: (kind, body) => socket.emit(kind, body),
      close: () => socket.close(),
    }));
    socket.once('connect_error', (err) => { socket.close(); reject(err); });
  });
}

/** Redis counters so far, from one `INFO stats commandstats` (one read event, one `info` call),
 * or null for a peer without Redis: `calls` per command name (INFO commandstats, which counts the
 * commands a script or function runs as well as the EVALSHA/FCALL that ran them, and those inside
 * MULTI/EXEC) and `reads`, the read events of client sockets (total_reads_processed: one per
 * request or pipeline that arrives at once, i.e. about one per client round trip). */
async function redisStats(client) {
  if (!client) return null;
  const info = await client.sendCommand(['INFO', 'stats', 'commandstats']);
  const calls = {};
  for (const m of info.matchAll(/cmdstat_(\S+?):calls=(\d+)/g)) calls[m[1]] = Number(m[2]);
  const reads = Number(/total_reads_processed:(\d+)/.exec(info)?.[1] ?? NaN);
  return { calls, reads };
}

// Redis commands that run a script or a function; the commands those run are counted on their own.
const SCRIPT_CALLS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/** Redis work per completed command between two `redisStats` readings (the load generator's own
 * INFO excluded): all commands by name, script/function calls, and client round trips. */
function redisPerCommand(before, after, done) {
  if (!before || !after || !done) return {};
  const perCmd = Object.fromEntries(Object.entries(after.calls)
    .filter(([name]) => name !== 'info')
    .map(([name, n]) => [name, (n - (before.calls[name] ?? 0)) / done])
    .filter(([, n]) => n > 0));
  return {
    redisPerCmd: perCmd,
    redisCmdsPerCmd: Object.values(perCmd).reduce((a, b) => a + b, 0),
    redisScriptsPerCmd: Object.entries(perCmd).filter(([name]) => SCRIPT_CALLS.has(name))
      .reduce((a, [, n]) => a + n, 0),
    // The second INFO's read event is counted in `after`; the first one's in `before`.
    redisReadsPerCmd: (after.reads - before.reads - 1) / done,
  };
}

function padTo(obj, bytes) {
  const pad = Math.max(0, bytes - JSON.stringify(obj).length - 10);
  return { ...obj, pad: randomBytes(Math.ceil(pad / 2)).toString('hex').slice(0, pad) };
}

function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

async function closedLoop() {
  const errors = {};
  const countError = (code) => { errors[code] = (errors[code] ?? 0) + 1; };
  const command = padTo({ type: 'NAVIGATE', url: 'https://example.com/some/path?x=1' }, cfg.payload);
  const resultData = padTo({ title: 'Example Domain', url: 'https://example.com/' }, cfg.payload);

  // Phases: warm-up (nothing counted), measure (throughput, latency, errors), drain (errors of
  // commands still in flight; whatever is unanswered `cmdTimeoutMs` after the window is lost).
  const st = { running: true, measuring: false, counting: false, tStart: 0, done: 0, progress: 0 };
  const exts = [];
  for (let i = 0; i < cfg.extensions; i++) {
    const ext = await connect(cfg.extUrl, {
      role: 'extension', extensionId: `bench-ext-${i}`, capabilities: ['*'], name: 'bench',
    });
    ext.on('command', (c) => {
      const answer = () => {
        for (let p = 1; p <= cfg.progress; p++) {
          ext.reply('progress', { id: c.id, percent: Math.round((100 * p) / (cfg.progress + 1)) });
        }
        ext.reply('result', { id: c.id, success: true, data: resultData });
      };
      if (cfg.serviceMs > 0) setTimeout(answer, cfg.serviceMs); else answer();
    });
    ext.on('disconnect', () => { if (st.running) countError('EXTENSION_SOCKET_CLOSED'); });
    exts.push(ext);
  }
  await sleep(300); // let the peer register the extensions before the first command

  const lat = [];
  const inflight = new Set();     // every command not yet answered: {client, t0, id}
  const byId = new Map();         // command id (from the ack) -> command record
  const early = new Map();        // results that overtook their ack, by id

  function complete(rec, r) {
    inflight.delete(rec);
    byId.delete(rec.id);
    if (!r.success) {
      if (st.counting) countError(r.error?.code ?? 'FAILED');
    } else if (st.measuring) {
      lat.push(performance.now() - rec.t0);
      st.done++;
    }
    fire(rec.client);
  }
  function fire(client) {
    if (!st.running) return;
    const rec = { client, t0: performance.now(), id: null };
    inflight.add(rec);
    client.command(command, (ack) => {
      if (!inflight.has(rec)) return;
      if (!ack || !ack.accepted) {
        inflight.delete(rec);
        if (st.counting) countError(ack?.error?.code ?? 'REJECTED');
        setTimeout(() => fire(client), 10);
        return;
      }
      rec.id = ack.id;
      const r = early.get(ack.id);
      if (r) { early.delete(ack.id); complete(rec, r); } else byId.set(ack.id, rec);
    });
  }

  const clients = [];
  for (let i = 0; i < cfg.clients; i++) {
    const c = await connect(cfg.clientUrl, { role: 'client' });
    c.on('result', (r) => {
      const rec = byId.get(r.id);
      if (rec) complete(rec, r); else early.set(r.id, r);
    });
    c.on('progress', () => { if (st.measuring) st.progress++; });
    c.on('disconnect', () => { if (st.running) countError('CLIENT_SOCKET_CLOSED'); });
    clients.push(c);
  }
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const rec of inflight) {
      if (now - rec.t0 > cfg.cmdTimeoutMs) {
        inflight.delete(rec);
        byId.delete(rec.id);
        if (st.counting) countError('CLIENT_TIMEOUT');
        fire(rec.client);
      }
    }
  }, 200);

  for (const c of clients) for (let k = 0; k < cfg.inflight; k++) fire(c);
  await sleep(cfg.warmupMs);
  const redis = cfg.redisPort ? createClient({ url: `redis://127.0.0.1:${cfg.redisPort}` }) : null;
  await redis?.connect();
  const redis0 = await redisStats(redis);
  const cpu0 = cpuSeconds(cfg.pids);
  const procCpu0 = Object.fromEntries(cfg.procs.map(({ name, pids }) => [name, cpuSeconds(pids)]));
  const rssStart = rssKiB(cfg.pids);
  const self0 = process.cpuUsage();
  const machine0 = machineCpu();
  st.measuring = true;
  st.counting = true;
  st.tStart = performance.now();
  await sleep(cfg.measureMs);
  st.measuring = false;
  const elapsed = (performance.now() - st.tStart) / 1000;
  const serverCpu = cpuSeconds(cfg.pids) - cpu0;
  const procCpu = cfg.procs.map(({ name, pids }) => [name, cpuSeconds(pids) - procCpu0[name]]);
  const self = process.cpuUsage(self0);
  const machine1 = machineCpu();
  const selfCpu = (self.user + self.system) / 1e6;
  const redis1 = await redisStats(redis);
  await redis?.quit();
  st.running = false;
  const rss = rssKiB(cfg.pids);
  // Let what is in flight finish (so the peer is quiet for the next step), then hang up.
  const until = performance.now() + cfg.cmdTimeoutMs;
  while (inflight.size && performance.now() < until) await sleep(20);
  clearInterval(sweep);
  if (inflight.size) errors.UNANSWERED = inflight.size;
  st.counting = false;
  for (const c of [...clients, ...exts]) c.close();
  lat.sort((a, b) => a - b);
  return {
    completed: st.done,
    cmdPerSec: st.done / elapsed,
    p50: quantile(lat, 0.5), p95: quantile(lat, 0.95), p99: quantile(lat, 0.99),
    max: lat.at(-1) ?? null,
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    progressEvents: st.progress,
    serverCpuUsPerCmd: st.done ? (serverCpu * 1e6) / st.done : null,
    cpuUsPerCmdByProcess: st.done
      ? Object.fromEntries(procCpu.map(([name, sec]) => [name, (sec * 1e6) / st.done])) : null,
    // Redis commands per completed command: all (by name, including those run inside scripts and
    // MULTI/EXEC), script/function calls among them, and client round trips (socket reads).
    ...redisPerCommand(redis0, redis1, st.done),
    serverCpuPct: (100 * serverCpu) / elapsed,
    loadgenCpuPct: (100 * selfCpu) / elapsed,
    // CPU that neither the peer nor the load generator used: other work on the machine, and the
    // hypervisor's steal. High values mean the step was disturbed.
    otherCpuPct: (100 * (machine1.busy - machine0.busy - serverCpu - selfCpu)) / elapsed,
    stealPct: (100 * (machine1.steal - machine0.steal)) / elapsed,
    serverRssStartKiB: rssStart,
    serverRssKiB: rss,
    seconds: elapsed,
  };
}

/** Node peers collect garbage on SIGUSR2 (see node_relay.mjs), so RSS compares like with like. */
async function collectGarbage() {
  for (const pid of cfg.gcPids ?? []) {
    try { process.kill(pid, 'SIGUSR2'); } catch { /* gone */ }
  }
  if (cfg.gcPids?.length) await sleep(300);
}

async function idle() {
  await collectGarbage();
  const rss0 = rssKiB(cfg.pids);
  const cpu0 = cpuSeconds(cfg.pids);
  const conns = [];
  let failures = 0;
  let nextIdx = 0;
  const t0 = performance.now();
  async function opener() {
    while (nextIdx < cfg.connections) {
      nextIdx++;
      try { conns.push(await connect(cfg.clientUrl, { role: 'client' })); } catch { failures++; }
    }
  }
  await Promise.all(Array.from({ length: Math.min(cfg.concurrency, cfg.connections) }, opener));
  const connectSeconds = (performance.now() - t0) / 1000;
  const connectCpu = cpuSeconds(cfg.pids) - cpu0;
  await sleep(cfg.settleMs);
  await collectGarbage();
  const rss1 = rssKiB(cfg.pids);
  for (const c of conns) c.close();
  await sleep(200);
  return {
    connected: conns.length,
    failures,
    connPerSec: conns.length / connectSeconds,
    connectSeconds,
    kibPerConn: conns.length ? (rss1 - rss0) / conns.length : null,
    serverCpuUsPerConn: conns.length ? (connectCpu * 1e6) / conns.length : null,
    serverRssKiB: rss1,
  };
}

const result = cfg.mode === 'idle' ? await idle() : await closedLoop();
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0);
