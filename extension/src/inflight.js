// Commands this browser has taken and not yet handed back, in chrome.storage.session: it
// survives a service-worker restart (not a browser restart), so a restarted worker resumes what
// it had acknowledged, and re-sends a result the hub had not confirmed. Keys: `cmd:<id>` →
// {command, memo, result?}.

const key = (id) => `cmd:${id}`;

export async function get(id) {
  return (await chrome.storage.session.get(key(id)))[key(id)] ?? null;
}

export async function all() {
  const stored = await chrome.storage.session.get(null);
  return Object.entries(stored).filter(([name]) => name.startsWith('cmd:'))
    .map(([, record]) => record);
}

export async function remember(command) {
  await chrome.storage.session.set({ [key(command.id)]: { command, memo: {} } });
}

export async function update(id, change) {
  const record = await get(id);
  if (record) await chrome.storage.session.set({ [key(id)]: { ...record, ...change } });
}

export async function forget(id) {
  await chrome.storage.session.remove(key(id));
}
