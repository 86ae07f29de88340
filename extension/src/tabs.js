// Which tab a command acts on, and running page functions in it. A command may name `tabId`;
// otherwise it acts on the working tab: the one the last NAVIGATE opened or loaded (kept in
// chrome.storage.session, so a restarted worker keeps it), else the active tab.

import { Code, CommandError } from './errors.js';
import { pageAct } from './page.js';

export async function setWorkingTab(tabId) {
  await chrome.storage.session.set({ workingTabId: tabId });
}

async function existing(tabId) {
  try {
    return await chrome.tabs.get(tabId);
  } catch {
    return null;
  }
}

/** The tab `params.tabId` names, or the working tab; null when there is none. */
export async function findTab(params) {
  if (params.tabId !== undefined) {
    if (!Number.isInteger(params.tabId)) {
      throw new CommandError(Code.VALIDATION_FAILED, 'tabId must be an integer');
    }
    const tab = await existing(params.tabId);
    if (!tab) throw new CommandError(Code.NOT_FOUND, `no tab with id ${params.tabId}`);
    return tab;
  }
  const { workingTabId } = await chrome.storage.session.get('workingTabId');
  const working = workingTabId === undefined ? null : await existing(workingTabId);
  if (working) return working;
  const [active] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  return active ?? null;
}

export async function requireTab(params) {
  const tab = await findTab(params);
  if (!tab) throw new CommandError(Code.NOT_FOUND, 'no tab is open: NAVIGATE first');
  return tab;
}

/** Run `pageAct(action, id, ...args)` (page.js) in the tab and unwrap its answer. EVALUATE runs
 * in the page's own world, the rest in the extension's isolated one. */
export async function inPage(tab, action, id, ...args) {
  const [injection] = await chrome.scripting.executeScript({
    target: { tabId: tab.id }, func: pageAct, args: [action, id, ...args],
    world: action === 'evaluate' ? 'MAIN' : 'ISOLATED',
  });
  const answer = injection?.result;
  if (!answer) throw new CommandError(Code.BROWSER_ERROR, 'the page returned nothing');
  if (answer.error) throw new CommandError(answer.error.code, answer.error.message);
  return answer.value;
}

/** Resolves with the tab id once the tab `start()` names (it answers the id) has loaded: a
 * `loading` then a `complete`. Updates that come before the id is known are kept, not lost.
 * `onStarted()` is called once the navigation is under way. */
export function loaded(start, signal, onStarted) {
  return new Promise((resolve, reject) => {
    let tabId = null;
    let seenLoading = false;
    const early = [];
    const finish = (outcome) => {
      chrome.tabs.onUpdated.removeListener(listener);
      signal.removeEventListener('abort', aborted);
      outcome();
    };
    const handle = (updatedId, change) => {
      if (updatedId !== tabId) return;
      if (change.status === 'loading') seenLoading = true;
      if (change.status === 'complete' && seenLoading) finish(() => resolve(tabId));
    };
    const listener = (updatedId, change) => {
      if (tabId === null) early.push([updatedId, change]);
      else handle(updatedId, change);
    };
    const aborted = () => finish(() => reject(signal.reason));
    chrome.tabs.onUpdated.addListener(listener);
    signal.addEventListener('abort', aborted);
    start().then((id) => {
      tabId = id;
      onStarted();
      for (const [updatedId, change] of early) handle(updatedId, change);
    }, (error) => finish(() => reject(error)));
  });
}
