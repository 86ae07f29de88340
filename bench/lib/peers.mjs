// The four benchmark peers: how each one is started on free loopback ports, how we know it
// serves, which URLs its clients and extensions use, and which processes count as its server.
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

export function peerDefinitions({ root, bench, group, serverCpus }) {
  const venv = path.join(root, '.venv/bin');
  const opts = (env = {}) => ({ env, cpus: serverCpus, cwd: root });

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

  return {
    'hub-aio': {
      label: 'hub all-in-one',
      async start() {
        const port = await freePort();
        const rec = group.start('hub-aio', hubBinary('semantest-server'), [],
          opts({ ...HUB_ENV, PORT: String(port) }));
        await served(rec, port);
        const url = `http://127.0.0.1:${port}`;
        return { id: 'hub-aio', transport: 'sio', clientUrl: url, extUrl: url,
          rootPids: [rec.child.pid] };
      },
    },
    'hub-services': {
      label: 'hub services over Redis',
      async start() {
        const r = await redis('hub-services');
        const env = { ...HUB_ENV, REDIS_URL: `redis://127.0.0.1:${r.port}/0` };
        const auth = group.start('hub-auth', hubBinary('semantest-auth'), [], opts(env));
        const router = group.start('hub-router', hubBinary('semantest-router'), [], opts(env));
        const port = await freePort();
        const gateway = group.start('hub-gateway', hubBinary('semantest-gateway'), [],
          opts({ ...env, PORT: String(port) }));
        await served(gateway, port);
        for (const rec of [auth, router]) {
          if (rec.exited) throw new Error(`${rec.name} exited; see ${rec.log}`);
        }
        const url = `http://127.0.0.1:${port}`;
        return { id: 'hub-services', transport: 'sio', clientUrl: url, extUrl: url,
          rootPids: [r.rec, auth, router, gateway].map((x) => x.child.pid) };
      },
    },
    'node-relay': {
      label: 'Node socket.io relay',
      async start() {
        const r = await redis('node-relay');
        const nodes = [];
        for (const name of ['relay-clients', 'relay-extensions']) {
          const port = await freePort();
          const rec = group.start(name, process.execPath, [
            path.join(bench, 'node_relay.mjs'), '--port', String(port), '--redis-port',
            String(r.port)], opts());
          await group.waitLog(rec, 'READY', 15000);
          await served(rec, port);
          nodes.push({ rec, url: `http://127.0.0.1:${port}` });
        }
        return { id: 'node-relay', transport: 'sio', clientUrl: nodes[0].url,
          extUrl: nodes[1].url, rootPids: [r.rec, ...nodes.map((n) => n.rec)].map((x) => x.child.pid) };
      },
    },
    'stream-relay': {
      label: 'raw stream relay',
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
          rootPids: [r.rec, router, gateway].map((x) => x.child.pid) };
      },
    },
  };
}
