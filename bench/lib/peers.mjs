// The four benchmark peers: how each one is started on free loopback ports, how we know it
// serves, which URLs its clients and extensions use, and which processes (`recs`) are its server.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitHttp } from './procs.mjs';

/** Environment every hub process gets: no auth, loopback only, room for the idle workload. */
export const HUB_ENV = {
  HOST: '127.0.0.1',
  AUTH_ENABLED: 'false',
  MAX_CONNECTIONS: '5000',
  JWT_SECRET: 'bench-only-secret-not-for-production-use-0123456789',
};

export function peerDefinitions({ root, bench, group, serverCpus, hub, candidate, jaegerCpus }) {
  const venv = path.join(root, '.venv/bin');
  const opts = (env = {}) => ({ env, cpus: serverCpus, cwd: root });
  // The hub reads ./config.json when present: run it where there is none.
  const hubOpts = (env) => ({ ...opts({ ...HUB_ENV, ...env }), cwd: group.logDir });

  async function redis(name) {
    const port = await freePort();
    const rec = group.start(`${name}-redis`, 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', os.tmpdir(),
    ], opts());
    await group.waitLog(rec, 'Ready to accept connections', 10000);
    return { port, rec };
  }

  function hubBinary(name) {
    const bin = path.join(venv, name);
    if (!fs.existsSync(bin)) throw new Error(`${bin} missing: install the hub (make run does)`);
    return bin;
  }

  async function served(rec, port) {
    await waitHttp(`http://127.0.0.1:${port}/health`, 30000, () => !rec.exited);
  }

  // --tracing: hubs that export every span over OTLP (http/protobuf) to a real Jaeger, the one
  // tests/observability runs (built by tests/observability/jaeger/jaeger.sh), started once for the
  // run on the load generator's CPU, so that the trace store does not take the peer's core.
  let otlpEnv = null;
  async function tracingEnv() {
    if (!otlpEnv) {
      const dir = path.join(root, 'tests/observability/jaeger');
      const bin = execFileSync('bash', [path.join(dir, 'jaeger.sh')]).toString().trim()
        .split('\n').pop();
      const ports = {};
      for (const name of ['JAEGER_OTLP_GRPC_PORT', 'JAEGER_OTLP_HTTP_PORT', 'JAEGER_QUERY_PORT',
        'JAEGER_QUERY_GRPC_PORT']) ports[name] = String(await freePort());
      const rec = group.start('jaeger', bin, ['--config', path.join(dir, 'config.yaml')],
        { env: { ...ports, JAEGER_HOST: '127.0.0.1' }, cpus: jaegerCpus });
      await waitHttp(`http://127.0.0.1:${ports.JAEGER_QUERY_PORT}/api/services`, 60000,
        () => !rec.exited);
      otlpEnv = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${ports.JAEGER_OTLP_HTTP_PORT}` };
    }
    return otlpEnv;
  }
  const traced = (env) => async () => ({ ...env, ...await tracingEnv() });

  function hubAio(id, envOf) {
    return {
      async start() {
        const port = await freePort();
        const extraEnv = typeof envOf === 'function' ? await envOf() : envOf;
        const rec = group.start(id, hubBinary('semantest-server'), [],
          hubOpts({ ...extraEnv, PORT: String(port) }));
        await served(rec, port);
        const url = `http://127.0.0.1:${port}`;
        return { id, transport: 'sio', clientUrl: url, extUrl: url, recs: [rec] };
      },
    };
  }

  function hubServices(id, envOf) {
    return {
      async start() {
        const extraEnv = typeof envOf === 'function' ? await envOf() : envOf;
        const r = await redis(id);
        const env = { ...extraEnv, REDIS_URL: `redis://127.0.0.1:${r.port}/0` };
        const recs = [];
        let port;
        for (const role of ['auth', 'router', 'gateway']) { // every role serves /health
          port = await freePort();
          const rec = group.start(`${id}-${role}`, hubBinary(`semantest-${role}`), [],
            hubOpts({ ...env, PORT: String(port) }));
          await served(rec, port);
          recs.push(rec);
        }
        const url = `http://127.0.0.1:${port}`;
        return { id, transport: 'sio', clientUrl: url, extUrl: url, recs: [r.rec, ...recs],
          redisPort: r.port };
      },
    };
  }

  // Another source tree of the hub (a snapshot, or a candidate change measured beside the current
  // one) is imported first: PYTHONPATH=<tree>/services. A tree without services/semantest would
  // silently fall back to the venv's editable install (this checkout): check which package the
  // hub's Python really imports, before anything is measured.
  const treeEnv = (tree) => (tree ? { PYTHONPATH: path.join(path.resolve(tree), 'services') } : {});
  const importedFrom = (env) => {
    const origin = execFileSync(path.join(venv, 'python'), ['-c',
      'import importlib.util as u; print(u.find_spec("semantest").origin)'],
    { cwd: group.logDir, env: { ...process.env, ...env } }).toString().trim();
    return path.dirname(path.dirname(origin)); // <tree>/services
  };
  const checkTree = (tree) => {
    const env = treeEnv(tree);
    const want = path.join(path.resolve(tree ?? root), 'services');
    if (!fs.existsSync(path.join(want, 'semantest', '__init__.py'))) {
      throw new Error(`${want}/semantest is missing: --hub and --candidate name a tree holding `
        + 'services/ (a checkout, or e.g. `git archive HEAD services | tar -x -C DIR`)');
    }
    const got = importedFrom(env);
    if (fs.realpathSync(got) !== fs.realpathSync(want)) {
      throw new Error(`the hub from ${want} would import semantest from ${got}: `
        + 'is that a tree holding services/semantest?');
    }
    return env;
  };
  const hubEnv = checkTree(hub);
  const candidateEnv = candidate ? checkTree(candidate) : null;
  return {
    'hub-aio': hubAio('hub-aio', hubEnv),
    'hub-services': hubServices('hub-services', hubEnv),
    'hub-aio-traced': hubAio('hub-aio-traced', traced(hubEnv)),
    'hub-services-traced': hubServices('hub-services-traced', traced(hubEnv)),
    ...(candidate ? {
      'hub-aio-candidate': hubAio('hub-aio-candidate', candidateEnv),
      'hub-services-candidate': hubServices('hub-services-candidate', candidateEnv),
    } : {}),
    'node-relay': {
      async start() {
        const r = await redis('node-relay');
        const nodes = [];
        for (const name of ['relay-clients', 'relay-extensions']) {
          const port = await freePort();
          const rec = group.start(name, process.execPath, ['--expose-gc',
            path.join(bench, 'node_relay.mjs'), '--port', String(port), '--redis-port',
            String(r.port)], opts());
          await served(rec, port);
          nodes.push({ rec, url: `http://127.0.0.1:${port}` });
        }
        return { id: 'node-relay', transport: 'sio', clientUrl: nodes[0].url,
          extUrl: nodes[1].url, recs: [r.rec, ...nodes.map((n) => n.rec)],
          gcPids: nodes.map((n) => n.rec.child.pid), redisPort: r.port };
      },
    },
    'stream-relay': {
      async start() {
        const r = await redis('stream-relay');
        const script = path.join(bench, 'stream_relay.py');
        const router = group.start('stream-router', path.join(venv, 'python'), [
          script, 'router', '--redis-port', String(r.port)], opts());
        await group.waitLog(router, 'READY', 15000);
        const port = await freePort();
        const gateway = group.start('stream-gateway', path.join(venv, 'python'), [
          script, 'gateway', '--redis-port', String(r.port), '--port', String(port)], opts());
        await served(gateway, port);
        const url = `ws://127.0.0.1:${port}`;
        return { id: 'stream-relay', transport: 'ws', clientUrl: url, extUrl: url,
          recs: [r.rec, router, gateway], redisPort: r.port };
      },
    },
  };
}
