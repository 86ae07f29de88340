// Turns the benchmark's raw step results into the markdown report: one table per workload with
// each peer's ratio to the Node relay, a summary, a candidate-against-baseline table when there is
// a candidate, py-spy top costs, and the two final ratio lines.
import fs from 'node:fs';

const REF = 'node-relay';
const LABELS = {
  'hub-aio': 'hub all-in-one',
  'hub-services': 'hub services (Redis)',
  'hub-aio-candidate': 'candidate hub all-in-one',
  'hub-services-candidate': 'candidate hub services (Redis)',
  'hub-aio-traced': 'hub all-in-one, tracing on',
  'hub-services-traced': 'hub services (Redis), tracing on',
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
  if (!perCmd || !Object.keys(perCmd).length) return '-';
  const entries = Object.entries(perCmd).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return `${total.toFixed(1)} (${entries.slice(0, 3).map(([k, n]) => `${k} ${n.toFixed(1)}`).join(', ')})`;
}

/** Redis script/function calls and client round trips per command ('-' for a peer without Redis). */
const redisScripts = (r) => (r?.redisPerCmd && Object.keys(r.redisPerCmd).length
  ? fmt(r.redisScriptsPerCmd, 1) : '-');
const redisTrips = (r) => (r?.redisPerCmd && Object.keys(r.redisPerCmd).length
  ? fmt(r.redisReadsPerCmd, 1) : '-');

/** "a → b (+x %)" for the candidate table. */
function change(a, b, digits = 0) {
  if (a == null || b == null) return `${fmt(a, digits)} → ${fmt(b, digits)}`;
  const pct = a === 0 ? '' : ` (${b >= a ? '+' : '−'}${Math.abs((100 * (b - a)) / a).toFixed(0)} %)`;
  return `${fmt(a, digits)} → ${fmt(b, digits)}${pct}`;
}

/** The W2 step where the peer's median-over-rounds cmd/s is highest: {stepId, run}, or null. */
function peakOf(results, id, w2Ids) {
  return w2Ids.map((stepId) => ({ stepId, run: median(results[id]?.[stepId], 'cmdPerSec') }))
    .filter((p) => p.run).sort((a, b) => b.run.cmdPerSec - a.run.cmdPerSec)[0] ?? null;
}

/** "redis 185, auth 9, router 1719, gateway 1710": server CPU µs per command by process. */
function byProcess(id, run) {
  return Object.entries(run?.cpuUsPerCmdByProcess ?? {})
    .map(([name, us]) => `${name.replace(`${id}-`, '')} ${fmt(us)}`).join(', ') || 'n/a';
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
        redisSummary(r.redisPerCmd), redisScripts(r), redisTrips(r), fmt(r.serverCpuPct),
        fmt(r.loadgenCpuPct), fmt(r.otherCpuPct)]);
    }
  }
  return table(['peer', 'in flight', 'cmd/s', 'cmd/s vs relay', 'p50 ms', 'p95 ms', 'p99 ms',
    'p99 vs relay', 'errors', 'server µs/cmd', 'µs/cmd vs relay',
    'Redis cmds/cmd, all incl. in scripts (top 3)', 'Redis script calls/cmd',
    'Redis round trips/cmd', 'server CPU %', 'loadgen CPU %', 'other CPU %'], rows);
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
  out.push(`Every value is one step's run: with ${rounds} round(s), the run with the median cmd/s `
    + '(W1, W2) or conn/s (W3) over the rounds, so a row stays self-consistent. '
    + 'Redis per command (INFO of the peer\'s Redis over the measured window, divided by the '
    + 'commands completed): "all" is INFO commandstats, which counts every command Redis ran, '
    + 'the ones a script or function runs (redis.call) and the ones inside MULTI/EXEC included, '
    + 'besides the EVALSHA/FCALL/MULTI/EXEC themselves; "script calls" are the EVAL*/FCALL* among '
    + 'them; "round trips" are the reads of client sockets (INFO stats total_reads_processed): '
    + 'one per request, or per pipeline that arrives at once.');

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
    out.push('Measured on fresh processes in every round: the peer (its Redis included) is started '
      + 'anew before its idle step from round 2 on, so no round reads memory on a heap that '
      + 'earlier steps grew. KiB per idle conn is the growth of the server\'s RSS (every process, '
      + 'Node garbage-collected before both readings) divided by the connections.', '');
    const ref = median(results[REF]?.idle, 'connPerSec');
    out.push(table(['peer', 'conn/s', 'conn/s vs relay', 'KiB per idle conn', 'KiB vs relay',
      'failures', 'server µs/conn', 'KiB per idle conn, each round'],
    peerIds.map((id) => median(results[id].idle, 'connPerSec'))
      .map((r, i) => [LABELS[peerIds[i]], fmt(r?.connPerSec), ratio(r?.connPerSec, ref?.connPerSec),
        fmt(r?.kibPerConn, 1), ratio(r?.kibPerConn, ref?.kibPerConn), r?.failures ?? 'n/a',
        fmt(r?.serverCpuUsPerConn),
        (results[peerIds[i]].idle ?? []).map((x) => fmt(x.kibPerConn, 1)).join(' / ') || 'n/a'])));
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

  // Which process of each peer spends the CPU, at the peer's peak W2 step.
  const w2Ids = byGroup('w2');
  const stepOf = (stepId) => steps.find((s) => s.id === stepId);
  const inflightAt = (p) => (p ? stepOf(p.stepId).clients * stepOf(p.stepId).inflight : 'n/a');
  const peak = (id) => peakOf(results, id, w2Ids);
  if (w2Ids.length) {
    out.push('', '## Server CPU µs per command by process, at each peer\'s peak (W2)', '');
    out.push(table(['peer', 'in flight at peak', 'server µs/cmd', 'processes (µs per command)'],
      peerIds.map((id) => {
        const p = peak(id);
        return [LABELS[id], inflightAt(p), fmt(p?.run.serverCpuUsPerCmd), byProcess(id, p?.run)];
      })));
  }

  // Summary: peak closed-loop throughput is the headline number.
  const refPeak = peak(REF)?.run;
  out.push('', '## Summary', '');
  out.push(`Peak: the W2 step with the highest cmd/s (median over ${rounds} round(s)); CPU, p99 `
    + 'and Redis columns are from that step. Redis columns as in the W1/W2 tables.', '');
  out.push(table(['peer', 'peak cmd/s (W2)', 'vs relay', 'in flight at peak', 'p99 at peak ms',
    'server µs/cmd at peak', 'by process', 'W1 p50 ms', 'Redis cmds/cmd at peak, all',
    'Redis script calls/cmd', 'Redis round trips/cmd', 'KiB per idle conn (fresh)', 'conn/s'],
  peerIds.map((id) => {
    const pk = peak(id);
    const p = pk?.run;
    const w1r = median(results[id].w1, 'cmdPerSec');
    const ir = median(results[id].idle, 'connPerSec');
    return [LABELS[id], fmt(p?.cmdPerSec), ratio(p?.cmdPerSec, refPeak?.cmdPerSec),
      inflightAt(pk), fmt(p?.p99, 2), fmt(p?.serverCpuUsPerCmd), byProcess(id, p), fmt(w1r?.p50, 2),
      p?.redisPerCmd && Object.keys(p.redisPerCmd).length ? fmt(p.redisCmdsPerCmd, 1) : '-',
      redisScripts(p), redisTrips(p), fmt(ir?.kibPerConn, 1), fmt(ir?.connPerSec)];
  })));

  // A candidate against its baseline, and tracing on against off (--tracing): same run, step by
  // step, each peer of a pair right after the other.
  const comparisons = [
    ['candidate', '## Candidate against baseline', `Baseline: ${info.hubSource}. Candidate: `
      + `${info.candidate}. Same run, each candidate interleaved right after its baseline`],
    ['traced', '## Tracing on against off', 'The same hub without and with OTEL_TRACES_EXPORTER='
      + 'otlp (http/protobuf to a real Jaeger on the load generator\'s CPU), each traced peer '
      + 'interleaved right after the untraced one'],
  ];
  for (const [suffix, heading, intro] of comparisons) {
    const pairs = [['hub-aio', 'all-in-one'], ['hub-services', 'services (Redis)']]
      .filter(([id]) => peerIds.includes(id) && peerIds.includes(`${id}-${suffix}`));
    if (pairs.length) {
      out.push('', heading, '');
      out.push(`${intro}; median over ${rounds} round(s). On this shared `
        + 'machine single steps move by up to ~20 % between two runs of the same code: trust a '
        + 'change seen at most steps, in server µs/cmd first, and use --rounds 3 for a decision.', '');
      const rows = [];
      for (const [id, mode] of pairs) {
        for (const stepId of [...byGroup('w1'), ...w2Ids]) {
          const a = median(results[id][stepId], 'cmdPerSec');
          const b = median(results[`${id}-${suffix}`][stepId], 'cmdPerSec');
          if (!a || !b) continue;
          const step = stepOf(stepId);
          rows.push([mode, `${step.group.toUpperCase()} ${step.clients * step.inflight}`,
            change(a.cmdPerSec, b.cmdPerSec), change(a.serverCpuUsPerCmd, b.serverCpuUsPerCmd),
            change(a.p50, b.p50, 2), change(a.p99, b.p99, 2),
            a.redisPerCmd && Object.keys(a.redisPerCmd).length
              ? change(a.redisCmdsPerCmd, b.redisCmdsPerCmd, 1) : '-',
            a.redisPerCmd && Object.keys(a.redisPerCmd).length
              ? change(a.redisReadsPerCmd, b.redisReadsPerCmd, 1) : '-',
            `${a.errorCount} → ${b.errorCount}`, `${fmt(a.otherCpuPct)} / ${fmt(b.otherCpuPct)}`]);
        }
      }
      out.push(table(['mode', 'step (in flight)', 'cmd/s', 'server µs/cmd', 'p50 ms', 'p99 ms',
        'Redis cmds/cmd, all', 'Redis round trips/cmd', 'errors', 'other CPU % (base / cand)'],
      rows));
      const idleRows = pairs.map(([id, mode]) => [id, mode, median(results[id].idle, 'connPerSec'),
        median(results[`${id}-${suffix}`].idle, 'connPerSec')]).filter(([, , a, b]) => a && b)
        .map(([, mode, a, b]) => [mode, change(a.connPerSec, b.connPerSec),
          change(a.serverCpuUsPerConn, b.serverCpuUsPerConn), change(a.kibPerConn, b.kibPerConn, 1),
          `${a.failures} → ${b.failures}`]);
      if (idleRows.length) {
        out.push('', table(['mode (W3, fresh processes)', 'conn/s', 'server µs/conn',
          'KiB per idle conn', 'failures'], idleRows));
      }
    }
  }

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

  // The last two lines, always, in this order (n/a when a peer was left out).
  const line = (id) => {
    const p = peak(id)?.run;
    return p && refPeak?.cmdPerSec ? (p.cmdPerSec / refPeak.cmdPerSec).toFixed(2) : 'n/a';
  };
  out.push('', `ratio hub-all-in-one/node-relay throughput: ${line('hub-aio')}`,
    `ratio hub-services/node-relay throughput: ${line('hub-services')}`, '');
  return out.join('\n');
}
