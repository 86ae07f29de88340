// `make bench`: runs the peers side by side on the same workloads, interleaved, and prints a
// markdown table with every peer's ratio to the Node relay, ending with the two lines
// `ratio hub-all-in-one/node-relay throughput: X.XX` and
// `ratio hub-services/node-relay throughput: X.XX` (peak W2 commands/s, median over rounds).
//
//   node bench/run.mjs [--profile smoke|short|soak | --quick] [--peers a,b,...] [--rounds N]
//                      [--unpinned] [--py-spy] [--soak-seconds S] [--out DIR]
//                      [--hub DIR | --baseline REF] [--candidate DIR] [--tracing]
//
// Peers: hub-aio (semantest-server, in-process bus), hub-services (semantest-auth, -router,
// -gateway over Redis), node-relay (socket.io + @socket.io/redis-adapter, two processes),
// stream-relay (raw WebSocket + Redis streams, no Socket.IO). Pinned (default): every server
// process of a peer, its Redis included, on CPU 0 and the load generator on CPU 1, so each peer
// gets one core. The hub is the venv's (this checkout's services/) unless --hub DIR names another
// tree holding services/ (e.g. `git archive HEAD services | tar -x -C DIR`), or --baseline REF
// (a git commit or branch) has its services/ extracted for this run; --candidate DIR adds a second
// tree (a proposed change; `.` is the working tree, the default with --baseline) as
// hub-aio-candidate and hub-services-candidate, each interleaved right after its baseline, for a
// before/after in one run. Relative paths are relative to the current directory. The services/
// of each tree is copied at the start, so edits made during the run do not leak into it. Every round
// after the first restarts each peer before its idle step, so that memory per idle connection is
// measured on fresh processes in every round. --tracing adds hub-aio-traced and
// hub-services-traced, each right after its untraced peer: the same hub exporting every span
// over OTLP to a real Jaeger (tests/observability/jaeger), for tracing's cost on against off.
// All traffic stays on 127.0.0.1; every process
// started here is stopped at the end.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { peerDefinitions } from './lib/peers.mjs';
import { cpuSeconds, ProcessGroup, processTree, quiesce, sleep } from './lib/procs.mjs';
import { renderReport } from './lib/report.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);

const { values: opt } = parseArgs({
  options: {
    profile: { type: 'string', default: 'short' },
    peers: { type: 'string', default: 'hub-aio,hub-services,node-relay,stream-relay' },
    rounds: { type: 'string' },
    unpinned: { type: 'boolean', default: false },
    'py-spy': { type: 'boolean', default: false },
    'soak-seconds': { type: 'string', default: '300' },
    out: { type: 'string', default: path.join(BENCH, 'results') },
    candidate: { type: 'string' },
    hub: { type: 'string' },
    baseline: { type: 'string' },
    quick: { type: 'boolean', default: false },
    tracing: { type: 'boolean', default: false },
  },
});

// Workloads. The idle step runs first in each round, on fresh processes (`fresh`: a peer that has
// already served a step is restarted first), so that its memory reading is not taken on a heap
// that earlier steps grew: freed memory that the allocator keeps would be reused by the new
// connections and hide their cost.
const IDLE = (connections, concurrency, settleMs) => ({
  id: 'idle', group: 'idle', mode: 'idle', connections, concurrency, settleMs, fresh: true,
});
const W1 = (warmupMs, measureMs) => ({
  id: 'w1', group: 'w1', mode: 'closed', clients: 1, extensions: 1, inflight: 1, warmupMs,
  measureMs,
});
const W2 = (inflight, warmupMs, measureMs) => ({
  id: `w2-k${inflight}`, group: 'w2', mode: 'closed', clients: 100, extensions: 10, inflight,
  warmupMs, measureMs,
});
const PROFILES = {
  smoke: {
    rounds: 1,
    steps: [
      IDLE(20, 10, 300), W1(300, 700),
      { ...W2(2, 300, 700), clients: 4, extensions: 2, progress: 1 },
    ],
  },
  short: {
    rounds: 1,
    steps: [IDLE(1000, 100, 2000), W1(1000, 4000),
      ...[1, 2, 4, 8].map((k) => W2(k, 1500, 4000))],
  },
  soak: {
    rounds: 3,
    steps: [IDLE(1000, 100, 5000), W1(2000, 15000),
      ...[1, 2, 4, 8].map((k) => W2(k, 2000, 10000))],
    finalSteps: [
      { id: 'soak', group: 'soak', mode: 'closed', clients: 100, extensions: 10, inflight: 2,
        progress: 1, warmupMs: 3000, measureMs: Number(opt['soak-seconds']) * 1000 },
    ],
  },
};

if (opt.quick) opt.profile = 'smoke';
const profile = PROFILES[opt.profile];
if (!profile) throw new Error(`unknown --profile ${opt.profile}`);
const rounds = Number(opt.rounds ?? profile.rounds);
if (!(rounds >= 1)) throw new Error(`--rounds ${opt.rounds}: give a number >= 1`);
if (opt.hub && opt.baseline) throw new Error('give --hub DIR or --baseline REF, not both');
// A candidate is measured right after its baseline in every round, so both see the same machine.
const peerIds = opt.peers.split(',').filter(Boolean).flatMap((id) => (
  (opt.candidate || opt.baseline) && ['hub-aio', 'hub-services'].includes(id)
    ? [id, `${id}-candidate`] : [id])).flatMap((id) => (
  opt.tracing && ['hub-aio', 'hub-services'].includes(id) ? [id, `${id}-traced`] : [id]));
const serverCpus = opt.unpinned ? null : '0';
const loadgenCpus = opt.unpinned ? null : '1';
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = path.resolve(opt.out, stamp);
const group = new ProcessGroup(path.join(outDir, 'logs'));

/** `git describe` of a tree, or of ROOT's REF; 'n/a' outside git. */
function describe(cwd, ref) {
  try {
    return execFileSync('git', ['describe', '--always', ...(ref ? [ref] : ['--dirty'])],
      { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch { return 'n/a'; }
}

// The hub code is copied at the start (services/ only) and every hub process of the run, restarts
// included, imports the copy: edits made to a tree while the benchmark runs do not leak into it.
function snapshot(tree, name) {
  const dest = path.join(outDir, 'src', name);
  fs.cpSync(path.join(tree, 'services'), path.join(dest, 'services'), {
    recursive: true, filter: (src) => path.basename(src) !== '__pycache__' });
  return dest;
}
const treeLabel = (tree) => `${tree === ROOT ? 'this checkout\'s working tree ' : ''}${tree} `
  + `(${describe(tree)})`;
for (const [name, tree] of [['--hub', opt.hub], ['--candidate', opt.candidate]]) {
  if (tree && !fs.existsSync(path.join(path.resolve(tree), 'services', 'semantest', '__init__.py'))) {
    throw new Error(`${name} ${tree}: no services/semantest there (give a checkout, or a tree from `
      + '`git archive HEAD services | tar -x -C DIR`)');
  }
}
let hubTree;
let hubLabel;
if (opt.baseline) {
  // --baseline REF: that commit's services/; the candidate defaults to the working tree, so
  // `--baseline HEAD` measures the uncommitted change to services/.
  hubTree = path.join(outDir, 'src', 'baseline');
  fs.mkdirSync(hubTree, { recursive: true });
  execFileSync('sh', ['-c', 'git archive "$1" services | tar -x -C "$2"', 'sh', opt.baseline,
    hubTree], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  hubLabel = `--baseline ${opt.baseline} (${describe(ROOT, opt.baseline)})`;
} else {
  const tree = opt.hub ? path.resolve(opt.hub) : ROOT;
  hubTree = snapshot(tree, 'hub');
  hubLabel = treeLabel(tree);
}
const candidateSrc = opt.candidate ? path.resolve(opt.candidate) : (opt.baseline ? ROOT : null);
const candidateTree = candidateSrc ? snapshot(candidateSrc, 'candidate') : null;
const candidateLabel = candidateSrc ? treeLabel(candidateSrc) : null;

// Stop everything we started, whatever ends this process.
let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  await group.stop();
  process.exit(code);
}
process.on('exit', () => group.killSync('SIGKILL'));
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));
process.on('uncaughtException', (err) => { console.error(err); shutdown(1); });
process.on('unhandledRejection', (err) => { console.error(err); shutdown(1); });
// Time budget: every step's own time plus a generous margin (connecting, quiescing, restarts).
const stepMs = (s) => (s.warmupMs ?? 0) + (s.measureMs ?? 0) + (s.settleMs ?? 0) + 30000;
const budgetMs = peerIds.length * (rounds * profile.steps.reduce((a, s) => a + stepMs(s), 0)
  + (profile.finalSteps ?? []).reduce((a, s) => a + stepMs(s), 0)) + 10 * 60000;
setTimeout(() => { console.error('bench: time budget exceeded'); shutdown(2); }, budgetMs).unref();

/** Runs one loadgen step against a started peer; returns its parsed RESULT. */
function runStep(peer, step) {
  const pids = processTree(peer.recs.map((rec) => rec.child.pid));
  const cfg = {
    ...step, transport: peer.transport, clientUrl: peer.clientUrl, extUrl: peer.extUrl, pids,
    gcPids: peer.gcPids ?? [], redisPort: peer.redisPort,
    procs: peer.recs.map((rec) => ({ name: rec.name, pids: processTree([rec.child.pid]) })),
  };
  const argv = [path.join(BENCH, 'loadgen.mjs'), JSON.stringify(cfg)];
  const [file, args] = loadgenCpus ? ['taskset', ['-c', loadgenCpus, process.execPath, ...argv]]
    : [process.execPath, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: BENCH, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      const dead = peer.recs.filter((rec) => rec.exited).map((rec) => rec.log);
      if (dead.length) reject(new Error(`${peer.id} lost a process during ${step.id}; see ${dead}`));
      else if (line) resolve(JSON.parse(line.slice(7)));
      else reject(new Error(`loadgen ${peer.id}/${step.id} exited ${code}: ${err.slice(-2000)}`));
    });
  }).then(async (res) => {
    // A slow peer may still be working off the step's backlog: wait for it to go quiet.
    res.quiet = await quiesce(pids);
    return res;
  });
}

/** py-spy on every Python process of the peer while it serves a W2 load. */
async function profilePeer(peer) {
  const pyspy = path.join(ROOT, '.venv/bin/py-spy');
  if (!fs.existsSync(pyspy)) throw new Error('py-spy missing: bash bench/bench.sh installs it');
  const pids = processTree(peer.recs.map((rec) => rec.child.pid)).filter((pid) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('python'); } catch { return false; }
  });
  // py-spy counts a runnable process that waits for a core as busy. So that a process preempted
  // by the Redis it just woke does not look busy in its send call, the peer may use every core
  // and runs SCHED_BATCH (no wakeup preemption) while it is profiled.
  for (const pid of processTree(peer.recs.map((rec) => rec.child.pid))) {
    execFileSync('taskset', ['-a', '-p', '-c', `0-${os.cpus().length - 1}`, String(pid)],
      { stdio: 'ignore' });
    execFileSync('chrt', ['-a', '-b', '-p', '0', String(pid)], { stdio: 'ignore' });
  }
  const seconds = 8;
  const rate = 250;
  const step = { ...W2(4, 1500, (seconds + 2) * 1000), id: 'profile' };
  const load = runStep(peer, step);
  await sleep(step.warmupMs + 500);
  const files = [];
  await Promise.all(pids.map((pid) => new Promise((resolve) => {
    const name = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
      .map((a) => path.basename(a)).slice(1, 3).join('-');
    const file = path.join(outDir, `profile-${peer.id}-${name}-${pid}.txt`);
    const cpu0 = cpuSeconds([pid]);
    const entry = { pid, name, file, rate, seconds };
    files.push(entry);
    const args = ['record', '--pid', String(pid), '--duration', String(seconds), '--rate', String(rate),
      '--nonblocking', '--format', 'raw', '--output', file];
    const [cmd, argv] = loadgenCpus ? ['taskset', ['-c', loadgenCpus, pyspy, ...args]] : [pyspy, args];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d) => process.stderr.write(d));
    child.on('exit', () => { entry.cpuSeconds = cpuSeconds([pid]) - cpu0; resolve(); });
  })));
  await load;
  return files.filter((f) => fs.existsSync(f.file));
}

function versions() {
  const py = path.join(ROOT, '.venv/bin/python');
  const pick = (cmd, args) => {
    try { return execFileSync(cmd, args, { cwd: ROOT }).toString().trim(); } catch { return 'n/a'; }
  };
  const pkg = (name) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(BENCH, 'node_modules', name, 'package.json'))).version;
    } catch { return 'n/a'; }
  };
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model, cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(),
    node: process.version,
    python: pick(py, ['-c', 'import sys; print(sys.version.split()[0])']),
    pythonPackages: pick(py, ['-c', 'from importlib.metadata import version as v; print(", ".join('
      + 'f"{n} {v(n)}" for n in ("python-socketio", "python-engineio", "aiohttp", "uvloop", '
      + '"redis", "hiredis", "orjson")))']),
    nodePackages: ['socket.io', 'socket.io-client', '@socket.io/redis-adapter', 'redis', 'ws']
      .map((n) => `${n} ${pkg(n)}`).join(', '),
    redis: pick('redis-server', ['--version']).split(' ').find((w) => w.startsWith('v=')),
    loadavg: os.loadavg().map((x) => x.toFixed(1)).join(' '),
    pinned: !opt.unpinned,
  };
}

const loadAtStart = os.loadavg()[0];
const gitAtStart = describe(ROOT);
if (loadAtStart > os.cpus().length / 2) {
  process.stderr.write(`bench: load average ${loadAtStart.toFixed(1)} on ${os.cpus().length} cores `
    + 'before the start: other work will disturb the numbers (see the "other CPU %" column)\n');
}
const defs = peerDefinitions({ root: ROOT, bench: BENCH, group, serverCpus, hub: hubTree,
  candidate: candidateTree, jaegerCpus: loadgenCpus });
for (const id of peerIds) if (!defs[id]) throw new Error(`unknown peer ${id}`);
const started = [];
for (const id of peerIds) {
  process.stderr.write(`starting ${id}\n`);
  started.push(await defs[id].start());
}

const results = Object.fromEntries(peerIds.map((id) => [id, {}]));
const t0 = Date.now();
const record = (peer, step, res) => {
  (results[peer.id][step.id] ??= []).push(res);
  const brief = step.mode === 'idle'
    ? `${res.connPerSec.toFixed(0)} conn/s ${res.kibPerConn?.toFixed(1)} KiB/conn`
    : `${res.cmdPerSec.toFixed(0)} cmd/s p50 ${res.p50?.toFixed(2)} ms p99 ${res.p99?.toFixed(2)} ms`
      + ` errors ${JSON.stringify(res.errors)} server ${res.serverCpuPct.toFixed(0)}%`
      + ` loadgen ${res.loadgenCpuPct.toFixed(0)}%`;
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)}s] ${peer.id} ${step.id}: ${brief}\n`);
};
/** Stops every process of started[idx] and starts the peer again (new ports, a new Redis). */
async function restart(idx) {
  const old = started[idx];
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)}s] restarting ${old.id}\n`);
  await group.stopRecs(old.recs);
  const peer = await defs[old.id].start();
  started[idx] = peer;
  await quiesce(processTree(peer.recs.map((rec) => rec.child.pid)));
  return peer;
}
for (let r = 0; r < rounds; r++) {
  for (const step of profile.steps) {
    for (let i = 0; i < started.length; i++) {
      const idx = (i + r) % started.length;
      const peer = step.fresh && started[idx].used ? await restart(idx) : started[idx];
      peer.used = true;
      record(peer, step, await runStep(peer, step));
    }
  }
}
for (const step of profile.finalSteps ?? []) {
  for (const peer of started) record(peer, step, await runStep(peer, step));
}
const profiles = [];
if (opt['py-spy']) {
  for (const peer of started.filter((p) => p.id.startsWith('hub'))) {
    process.stderr.write(`profiling ${peer.id}\n`);
    profiles.push({ peer: peer.id, files: await profilePeer(peer) });
  }
}
await group.stop();

const info = { ...versions(), git: gitAtStart, loadAtStart: loadAtStart.toFixed(1),
  hubSource: hubLabel, candidate: candidateLabel };
const report = renderReport({ info, profile: opt.profile, rounds, steps: [...profile.steps,
  ...(profile.finalSteps ?? [])], peerIds, results, profiles });
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ info, results }, null, 1));
fs.writeFileSync(path.join(outDir, 'report.md'), report);
process.stdout.write(report);
process.exit(0);
