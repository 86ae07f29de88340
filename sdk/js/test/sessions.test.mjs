// Sessions: create, share, join, read the session's results, rights, leave.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ForbiddenError, Hub, SessionNotFoundError, ValidationFailedError } from '../dist/index.js';
import { API_KEY, HUB_URL, closeAll, connectHub, login, startWorker, uid } from './env.mjs';

let owner;
let served;

before(async () => {
  owner = await connectHub();
  served = await startWorker();
});
after(closeAll);

test('the creator holds read and write and runs commands in the session', async () => {
  const session = await owner.createSession(uid('nightly'), { persistent: true });
  assert.deepEqual([...session.permissions].sort(), ['read', 'write']);
  assert.equal(session.persistent, true);
  const result = await session.run('NAVIGATE', { url: 'http://s.test/' }, { target: served.worker.extensionId });
  assert.equal(result.sessionId, session.id);
});

test('a member joined with a read share token gets every result of the session, and may not write', async () => {
  const session = await owner.createSession(uid('shared'));
  const shareToken = await session.share(['read']);
  const token = await login(process.env.USERNAME, process.env.PASSWORD); // another principal
  const reader = await Hub.connect(HUB_URL, { token });
  try {
    const joined = await reader.joinSession(session.id, { shareToken });
    assert.deepEqual(joined.permissions, ['read']);
    assert.equal(joined.name, session.name);
    const results = joined.results();
    const ownerResults = session.results();
    const sent = await session.run('NAVIGATE', { url: 'http://seen.test/' }, { target: served.worker.extensionId });
    const seen = (await results.next()).value;
    assert.equal(seen.id, sent.id);
    assert.deepEqual(seen.data, sent.data);
    assert.equal((await ownerResults.next()).value.id, sent.id); // the sender's own results too
    await assert.rejects(joined.run('NAVIGATE', { url: 'http://no.test/' }), ForbiddenError);
    await joined.leave();
    assert.deepEqual(await results.next(), { value: undefined, done: true }); // leaving ends it
  } finally {
    await reader.close();
  }
});

test('joining a session that does not exist, or with a forged token, is refused', async () => {
  await assert.rejects(owner.joinSession(uid('missing')), SessionNotFoundError);
  const session = await owner.createSession(uid('guarded'));
  const token = await login(process.env.USERNAME, process.env.PASSWORD);
  const stranger = await Hub.connect(HUB_URL, { token });
  try {
    await assert.rejects(stranger.joinSession(session.id, { shareToken: 'forged.token.value' }), ForbiddenError);
    await assert.rejects(owner.createSession(''), ValidationFailedError);
  } finally {
    await stranger.close();
  }
});

test('an api-key client sees its own sessions after a join without a token', async () => {
  const session = await owner.createSession(uid('mine'), { persistent: true });
  const again = await Hub.connect(HUB_URL, { apiKey: API_KEY });
  try {
    const joined = await again.joinSession(session.id);
    assert.deepEqual([...joined.permissions].sort(), ['read', 'write']);
    const token = await again.shareSession(session.id, ['read', 'write'], { expiresIn: 60_000 });
    assert.equal(typeof token, 'string');
    const results = joined.results();
    await again.leaveSession(session.id);
    assert.deepEqual(await results.next(), { value: undefined, done: true });
  } finally {
    await again.close();
  }
});
