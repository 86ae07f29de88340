// Turns the benchmark's raw step results into the markdown report: one table per workload with
// each peer's ratio to the Node relay, a summary, py-spy top costs, and the final ratio line.
import fs from 'node:fs';

const REF = 'node-relay';
const LABELS = {
  'hub-aio': 'hub all-in-one',
  'hub-services': 'hub services (Redis)',
  'hub-aio-candidate': 'candidate hub all-in-one',
  'hub-services-candidate': 'candidate hub services (Redis)',
  'node-relay': 'Node socket.io relay',
  'stream-relay': 'raw stream relay',
};

const fmt = (x, digits = 0) => (x == null || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const ratio = (a, b) => (a == null || b == null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}x`);

/** The run whose primary metric is the median across rounds (keeps a row self-consistent). */
function median(runs, key) {
  if (!runs?.length) return null;
  const sorted = [...runs].sort((a, b) => (a[key] ?? 0) - (b[key] ?? 0));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** "21.0 (xadd 4.0, set 3.0, get 2.0)": Redis commands per command, in all and the top three. */
function redisSummary(perCmd) {
  if (!perCmd) return '-';
  const entries = Object.entries(perCmd).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return `${total.toFixed(1)} (${entries.slice(0, 3).map(([k, n]) => `${k} ${n.toFixed(1)}`).join(', ')})`;
}

function closedRows(peerIds, results, stepIds, steps) {
  const rows = [];
  for (const stepId of stepIds) {
    const step = steps.find((s) => s.id === stepId);
    const ref = median(results[REF]?.[stepId], 'cmdPerSec');
    for (const id of peerIds) {
      const r = median(results[id][stepId], 'cmdPerSec');
      if (!r) continue;
      const errs = Object.entries(r.errors).map(([k, v]) => `${k}:${v}`).join(' ') || '0';
      rows.push([LABELS[id], step.clients * step.inflight, fmt(r.cmdPerSec), ratio(r.cmdPerSec, ref?.cmdPerSec),
        fmt(r.p50, 2), fmt(r.p95, 2), fmt(r.p99, 2), ratio(r.p99, ref?.p99), errs,
        fmt(r.serverCpuUsPerCmd), ratio(r.serverCpuUsPerCmd, ref?.serverCpuUsPerCmd),
        redisSummary(r.redisPerCmd), fmt(r.serverCpuPct), fmt(r.loadgenCpuPct),
        fmt(r.otherCpuPct)]);
    }
  }
  return table(['peer', 'in flight', 'cmd/s', 'cmd/s vs relay', 'p50 ms', 'p95 ms', 'p99 ms',
    'p99 vs relay', 'errors', 'server µs/cmd', 'µs/cmd vs relay', 'Redis calls/cmd (top 3)',
    'server CPU %', 'loadgen CPU %', 'other CPU %'], rows);
}

// uvloop runs callbacks from C, so a coroutine's sampled stack starts at its own frame; these
// roots only say "the event loop is running", and self time in run_app is the loop's C code.
const LOOP_ROOTS = /^(<module>|main\w*|run|run_app) \(/;

function parseFrame(frame) {
  const m = /^(.*) \((.*):\d+\)$/.exec(frame);
  if (!m) return { label: frame || '(native)', pkg: '(native)' };
  const [, name, file] = m;
  const parts = file.split('/');
  const base = parts.at(-1);
  let pkg = parts.length > 1 ? parts[0] : base.replace(/\.py$/, '');
  if (pkg === 'semantest' && parts.length > 2) pkg = `${parts[0]}/${parts[1]}`;
  if (name === 'run_app') pkg = 'event loop (uvloop C code, syscalls)';
  return { label: `${name} (${base})`, pkg };
}

/** A py-spy raw (collapsed) profile: top self and inclusive frames, and self time by package. */
export function summarizeProfile(file, top = 12) {
  const self = new Map();
  const incl = new Map();
  const pkgs = new Map();
  const bump = (m, k, n) => m.set(k, (m.get(k) ?? 0) + n);
  let total = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const cut = line.lastIndexOf(' ');
    const count = Number(line.slice(cut + 1));
    if (cut < 0 || !count) continue;
    const frames = line.slice(0, cut).split(';').map(parseFrame);
    total += count;
    bump(self, frames.at(-1).label, count);
    bump(pkgs, frames.at(-1).pkg, count);
    for (const label of new Set(frames.map((f) => f.label))) {
      if (!LOOP_ROOTS.test(label)) bump(incl, label, count);
    }
  }
  const best = (m, n = top) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([f, c]) => ({ frame: f, pct: (100 * c) / total }));
  return { total, self: best(self), inclusive: best(incl), packages: best(pkgs, 10) };
}

export function renderReport({ info, profile, rounds, steps, peerIds, results, profiles }) {
  const out = [];
  out.push(`# Semantest hub benchmark: profile ${profile}, ${rounds} round(s), `
    + `${info.pinned ? 'pinned (servers on CPU 0, load generator on CPU 1)' : 'unpinned'}`);
  out.push('');
  out.push(`Machine: ${info.cpu}, ${info.cores} cores, ${info.memGiB} GiB, Linux ${info.kernel}; `
    + `load average ${info.loadAtStart} at the start, ${info.loadavg} at the end. `
    + `Checkout ${info.git} at the start, ${info.date}; hub from ${info.hubSource}`
    + `${info.candidate ? `, candidate from ${info.candidate}` : ''}.`);
  out.push(`Versions: Python ${info.python} (${info.pythonPackages}); Node ${info.node} `
    + `(${info.nodePackages}); Redis ${info.redis}.`);
  out.push('Ratios are to the Node socket.io relay (peer 3). Latency is client emit to `result`. '
    + 'CPU % is of one core; "other" is CPU used on the machine by anything but the peer and '
    + 'the load generator during the step (plus steal): high values mean a disturbed step.');

  const byGroup = (g) => steps.filter((s) => s.group === g).map((s) => s.id);
  const w1 = steps.find((s) => s.group === 'w1');
  if (w1) {
    out.push('', `## W1 latency floor: ${w1.clients} client, ${w1.extensions} extension, 1 in flight`, '');
    out.push(closedRows(peerIds, results, byGroup('w1'), steps));
  }
  const w2 = steps.find((s) => s.group === 'w2');
  if (w2) {
    out.push('', `## W2 closed loop: ${w2.clients} clients, ${w2.extensions} extensions`, '');
    out.push(closedRows(peerIds, results, byGroup('w2'), steps));
  }
  const idle = steps.find((s) => s.group === 'idle');
  if (idle) {
    out.push('', `## W3 idle connections: ${idle.connections}, ${idle.concurrency} handshakes at a time`, '');
    const ref = median(results[REF]?.idle, 'connPerSec');
    out.push(table(['peer', 'conn/s', 'conn/s vs relay', 'KiB per idle conn', 'KiB vs relay',
      'failures', 'server µs/conn'], peerIds.map((id) => median(results[id].idle, 'connPerSec'))
      .map((r, i) => [LABELS[peerIds[i]], fmt(r?.connPerSec), ratio(r?.connPerSec, ref?.connPerSec),
        fmt(r?.kibPerConn, 1), ratio(r?.kibPerConn, ref?.kibPerConn), r?.failures ?? 'n/a',
        fmt(r?.serverCpuUsPerConn)])));
  }
  const soak = steps.find((s) => s.group === 'soak');
  if (soak) {
    out.push('', `## Soak: ${soak.clients} clients x ${soak.inflight} in flight, `
      + `${soak.measureMs / 1000} s, ${soak.progress} progress event per command`, '');
    out.push(closedRows(peerIds, results, ['soak'], steps));
    out.push('', table(['peer', 'server RSS at start KiB', 'at end KiB', 'drift %'],
      peerIds.map((id) => {
        const r = results[id].soak?.[0];
        return [LABELS[id], r?.serverRssStartKiB ?? 'n/a', r?.serverRssKiB ?? 'n/a',
          r ? fmt((100 * (r.serverRssKiB - r.serverRssStartKiB)) / r.serverRssStartKiB, 1) : 'n/a'];
      })));
  }

  // Which process of each peer spends the CPU, at the W2 step with the most commands in flight.
  const last = byGroup('w2').at(-1);
  if (last) {
    const step = steps.find((s) => s.id === last);
    out.push('', `## Server CPU µs per command by process (W2, ${step.clients * step.inflight} in flight)`,
      '');
    out.push(table(['peer', 'processes (µs per command)'], peerIds.map((id) => {
      const r = median(results[id]?.[last], 'cmdPerSec');
      const parts = Object.entries(r?.cpuUsPerCmdByProcess ?? {})
        .map(([name, us]) => `${name.replace(`${id}-`, '')} ${fmt(us)}`);
      return [LABELS[id], parts.join(', ') || 'n/a'];
    })));
  }

  // Summary: peak closed-loop throughput is the headline number.
  const peak = (id) => {
    const runs = byGroup('w2').map((s) => median(results[id]?.[s], 'cmdPerSec')).filter(Boolean);
    return runs.sort((a, b) => b.cmdPerSec - a.cmdPerSec)[0] ?? null;
  };
  const refPeak = peak(REF);
  out.push('', '## Summary', '');
  out.push(table(['peer', 'peak cmd/s (W2)', 'vs relay', 'p99 at peak ms', 'W1 p50 ms',
    'server µs/cmd at peak', 'KiB per idle conn', 'conn/s'], peerIds.map((id) => {
    const p = peak(id);
    const w1r = median(results[id].w1, 'cmdPerSec');
    const ir = median(results[id].idle, 'connPerSec');
    return [LABELS[id], fmt(p?.cmdPerSec), ratio(p?.cmdPerSec, refPeak?.cmdPerSec), fmt(p?.p99, 2),
      fmt(w1r?.p50, 2), fmt(p?.serverCpuUsPerCmd), fmt(ir?.kibPerConn, 1), fmt(ir?.connPerSec)];
  })));

  for (const { peer, files } of profiles) {
    for (const { name, file, rate, seconds, cpuSeconds } of files) {
      const s = summarizeProfile(file);
      out.push('', `## py-spy: ${LABELS[peer]}, ${name}`, '',
        `W2 at 4 in flight, processes unpinned, ${seconds} s at ${rate} Hz: ${s.total} samples `
        + `(${fmt(s.total / rate, 1)} s runnable) while the process used ${fmt(cpuSeconds, 1)} s `
        + 'of CPU; the difference is time it was runnable but waiting for a core.', '');
      out.push(table(['self %', 'function', 'inclusive %', 'function', 'self % by package',
        'package'], s.self.map((x, i) => [fmt(x.pct, 1), `\`${x.frame}\``,
        fmt(s.inclusive[i]?.pct, 1), `\`${s.inclusive[i]?.frame ?? ''}\``,
        fmt(s.packages[i]?.pct, 1), s.packages[i]?.frame ?? ''])));
    }
  }

  const hubPeak = peak('hub-services');
  const line = hubPeak && refPeak ? (hubPeak.cmdPerSec / refPeak.cmdPerSec).toFixed(2) : 'n/a';
  out.push('', `ratio hub-services/node-relay throughput: ${line}`, '');
  return out.join('\n');
}
