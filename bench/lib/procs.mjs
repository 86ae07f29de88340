// Process plumbing for the benchmark: start peers in their own process groups, wait until they
// serve, read CPU time and RSS from /proc, and stop every process we started, even on error.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** A free TCP port on 127.0.0.1 (bind to 0, read it, release it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Every pid in the process tree under `pid` (including it), from /proc/<pid>/stat ppid fields. */
export function processTree(pids) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(Number(entry));
  }
  const out = [];
  const todo = [...pids];
  while (todo.length) {
    const pid = todo.pop();
    if (out.includes(pid) || !fs.existsSync(`/proc/${pid}`)) continue;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** {ppid, ticks (utime+stime)} of one process, or null when it is gone. */
export function readStat(pid) {
  let text;
  try { text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return null; }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

/** Summed CPU seconds (user+system) of the given pids. */
export function cpuSeconds(pids) {
  return pids.reduce((sum, pid) => sum + (readStat(pid)?.ticks ?? 0), 0) / CLK_TCK;
}

/** Summed resident set size in KiB of the given pids. */
export function rssKiB(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]);
    } catch { /* exited */ }
  }
  return total;
}

/** Machine-wide CPU seconds from /proc/stat: {busy (all but idle and iowait), steal}. */
export function machineCpu() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - f[3] - f[4]) / CLK_TCK, steal: (f[7] ?? 0) / CLK_TCK };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `pids` use less than `pct` % of a core over 250 ms (at most `timeoutMs`). */
export async function quiesce(pids, pct = 5, timeoutMs = 15000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const before = cpuSeconds(pids);
    await sleep(250);
    if ((cpuSeconds(pids) - before) / 0.25 * 100 < pct) return true;
  }
  return false;
}

/** Resolves when GET url answers 2xx; rejects after timeoutMs or when `alive()` turns false. */
export async function waitHttp(url, timeoutMs, alive = () => true) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!alive()) throw new Error(`process for ${url} exited`);
    const ok = await new Promise((resolve) => {
      const req = http.get(url, { timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode >= 200 && res.statusCode < 300);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => { req.destroy(); resolve(false); });
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** Starts and tracks child processes (pids listed in logDir/pids.txt); stop() ends them all
 * (process group SIGTERM, then KILL). */
export class ProcessGroup {
  constructor(logDir) {
    this.logDir = logDir;
    this.children = [];
    fs.mkdirSync(logDir, { recursive: true });
  }

  /** Spawn `cmd args` (optionally pinned with taskset) in its own process group, output to a log. */
  start(name, cmd, args, { env = {}, cpus = null, cwd } = {}) {
    const log = path.join(this.logDir, `${name}.log`);
    const fd = fs.openSync(log, 'a');
    const [file, argv] = cpus ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, {
      cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    fs.appendFileSync(path.join(this.logDir, 'pids.txt'), `${child.pid} ${name}\n`);
    const rec = { name, child, log, exited: false };
    child.on('exit', () => { rec.exited = true; });
    this.children.push(rec);
    return rec;
  }

  /** Resolves when the child's log shows `marker`. */
  async waitLog(rec, marker, timeoutMs) {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (fs.readFileSync(rec.log, 'utf8').includes(marker)) return;
      if (rec.exited) break;
      await sleep(50);
    }
    throw new Error(`${rec.name} did not print ${marker}; see ${rec.log}`);
  }

  killSync(signal) {
    for (const rec of this.children) {
      if (rec.exited) continue;
      try { process.kill(-rec.child.pid, signal); } catch { /* already gone */ }
    }
  }

  async stop(graceMs = 3000) {
    await this.stopRecs(this.children, graceMs);
  }

  /** Stops some of the children (e.g. one peer, to restart it fresh): SIGTERM, then KILL. */
  async stopRecs(recs, graceMs = 3000) {
    const signal = (sig) => {
      for (const rec of recs) {
        if (rec.exited) continue;
        try { process.kill(-rec.child.pid, sig); } catch { /* already gone */ }
      }
    };
    signal('SIGTERM');
    const until = Date.now() + graceMs;
    while (Date.now() < until && recs.some((r) => !r.exited)) await sleep(50);
    signal('SIGKILL');
    const killed = Date.now() + 5000;
    while (Date.now() < killed && recs.some((r) => !r.exited)) await sleep(20);
    this.children = this.children.filter((rec) => !recs.includes(rec));
  }
}
