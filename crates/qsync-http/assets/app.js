// QSync web UI, /assets/app.js: the page's entry module (index.html loads it with
// <script type="module">; the Content-Security-Policy allows no inline script). It holds
// what the page knows (`state`), starts the page, reads the daemon's state over the HTTP
// API of the qsync-http crate (src/routes.rs) and keeps it current with its event stream
// (src/sse.rs). The sections are drawn by folders.js, lists.js and feed.js; api.js has
// the API call and the page's tools.
//
// The JSON it reads is the serde form of crates/qsync-control/src/lib.rs: replies carry
// a "reply" field (Reply::Tasks {tasks}, Reply::OutOfSync {task, paths}, ...), events an
// "event" field (DaemonEvent), ids are strings. Text from the daemon only ever goes into
// the page as text (api.js's el() uses textContent and text nodes), never as HTML.
//
// folders.js and lists.js import `state`, `act` and `scheduleRefresh` from here and use
// them only inside their functions: this module, which imports them, runs after them.

import { $, enc, api, pageToken, showError, clearError } from './api.js';
import { renderFolders, setupAddFolder, loadDiscovered, linkEnded } from './folders.js';
import { renderDevices, renderQuestions, renderConflicts, renderEmpties, renderVersions,
  renderApps, MAX_VERSIONS } from './lists.js';
import { addToFeed } from './feed.js';

/** What the page knows: filled by refreshAll(), and by events between refreshes. */
export const state = {
  device: '', // this device's id
  tasks: [], // [TaskInfo]
  status: null, // Status
  outOfSync: new Map(), // task id -> [NotInSync] (Reply::OutOfSync's `paths`)
  devices: [], // [DeviceInfo]
  versions: null, // [VersionInfo], read less often (see refreshAll); null: not read yet
  versionsTotal: 0, // how many versions are kept (the newest MAX_VERSIONS are read)
  apps: null, // [AppInfo], read with the versions; null: not read yet
  live: new Map(), // "task\npath" -> {info: TransferInfo, seen: ms}, from `transfer` events
  discovered: [], // [NearbyInfo], read while a link form is open
};

/** Run what a button asks: once at a time per button, its failure shown, then a refresh.
 * (aria-disabled rather than disabled: a disabled button would lose the keyboard focus.) */
export async function act(b, work) {
  if (b.getAttribute('aria-disabled') === 'true') return;
  b.setAttribute('aria-disabled', 'true');
  clearError();
  try {
    await work();
  } catch (e) {
    showError(e.message, 'action');
  } finally {
    b.removeAttribute('aria-disabled');
    scheduleRefresh();
  }
}

// ==== Refreshing: everything at once, at most once per 500 ms, and every 5 s anyway; the
// versions and apps (longer to read, and changing less) every 15 s, and when asked.
const SLOW_EVERY = 15000;
let refreshTimer = null;
let lastRefresh = 0;
let refreshing = false;
let slowWanted = true; // the versions and apps are to be read at the next refresh
let lastSlow = 0;

/** A refresh soon; `slow`: with the versions and apps. */
export function scheduleRefresh(slow) {
  if (slow === true) slowWanted = true;
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + 500 - Date.now());
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshAll(); }, wait);
}

/** Read the versions and apps into the state; a failure is returned (not thrown): the
 * rest of the page is drawn all the same, and they are read again at the next refresh. */
async function readSlow() {
  try {
    const [versions, apps] = await Promise.all([
      api('GET', `/rest/versions?newest=${MAX_VERSIONS}`), api('GET', '/rest/apps')]);
    state.versions = versions.versions || [];
    state.versionsTotal = versions.total || state.versions.length;
    state.apps = apps.apps || [];
    return null;
  } catch (e) {
    slowWanted = true;
    return e;
  }
}

async function refreshAll() {
  if (refreshing) { scheduleRefresh(); return; }
  refreshing = true;
  lastRefresh = Date.now();
  const slow = slowWanted || lastRefresh - lastSlow >= SLOW_EVERY;
  if (slow) { slowWanted = false; lastSlow = lastRefresh; }
  const later = slow ? readSlow() : Promise.resolve(null); // read with the rest
  try {
    const [status, tasks, devices, questions, conflicts] = await Promise.all([
      api('GET', '/rest/status'), api('GET', '/rest/tasks'), api('GET', '/rest/devices'),
      api('GET', '/rest/questions'), api('GET', '/rest/conflicts')]);
    // A paused task is "paused" whatever else: its out-of-sync list is not needed.
    const outOfSync = await Promise.all(tasks.tasks.filter((t) => !t.paused).map(
      (t) => api('GET', `/rest/tasks/${enc(t.task)}/out-of-sync`)
        .then((r) => [t.task, r.paths || []])));
    Object.assign(state, { status, tasks: tasks.tasks, devices: devices.devices,
      outOfSync: new Map(outOfSync), device: state.device || status.device });
    if (document.querySelector('.link-form:not([hidden])')) await loadDiscovered();
    $('device-id').textContent = state.device;
    renderFolders();
    renderDevices();
    renderQuestions(questions.questions);
    renderConflicts(conflicts.conflicts);
    renderEmpties();
    clearError('refresh');
    const failed = await later; // (the rest is drawn first: the versions may take longer)
    renderVersions(); // every time, as the apps: the folders' names may have changed
    renderApps();
    if (failed) showError(failed.message, 'refresh');
  } catch (e) {
    showError(e.message, 'refresh');
  } finally {
    refreshing = false;
  }
}

// ==== The event stream.
/** Events after which something on the page may have changed. */
const CHANGES = new Set(['applied', 'applied_more', 'conflict', 'connected', 'disconnected', 'question',
  'link_ended', 'task_changed', 'missed']);
/** Those after which the versions kept may have changed too. */
const VERSIONS_CHANGE = new Set(['applied', 'applied_more', 'conflict', 'missed']);

function onEvent(message) {
  let ev;
  try { ev = JSON.parse(message.data); } catch (_) { return; } // not an event of ours
  if (ev.event === 'transfer') { // TransferInfo's fields: the folder's progress
    state.live.set(`${ev.task}\n${ev.path}`, { info: ev, seen: Date.now() });
    renderFolders();
    return;
  }
  addToFeed(ev);
  if (ev.event === 'link_ended') linkEnded(ev);
  if (CHANGES.has(ev.event)) scheduleRefresh(VERSIONS_CHANGE.has(ev.event));
}

/** Follow /rest/events. The browser reconnects by itself (sending Last-Event-ID); if it
 * gives up (the stream answered an error), check the session and start a new one. */
let lastEventId = null;
function follow() {
  const since = lastEventId ? `&since=${enc(lastEventId)}` : '';
  const source = new EventSource(`/rest/events?csrf=${enc(pageToken())}${since}`);
  const show = (live) => {
    $('connection').textContent = live ? 'live' : 'reconnecting';
    $('connection').className = `connection ${live ? 'live' : 'reconnecting'}`;
  };
  source.onopen = () => { show(true); scheduleRefresh(); };
  source.onmessage = (message) => {
    if (message.lastEventId) lastEventId = message.lastEventId;
    onEvent(message);
  };
  source.onerror = () => {
    show(false);
    if (source.readyState === EventSource.CLOSED) {
      api('GET', '/rest/session').catch(() => {}); // a 401 there goes to the login page
      setTimeout(follow, 3000);
    }
  };
}

// ==== Start: the session (page token, who we are), the forms, the first read, the stream.
async function start() {
  $('error-dismiss').addEventListener('click', () => clearError());
  $('logout').addEventListener('click', () => fetch('/logout', { method: 'POST',
    credentials: 'same-origin', headers: { 'X-CSRF-Token': pageToken() } })
    .finally(() => window.location.assign('/login')));
  setupAddFolder();
  try {
    pageToken(); // taken from the address's fragment, which it leaves
    const session = await api('GET', '/rest/session'); // {caller, name}
    state.device = session.device || '';
    $('device-name').textContent = session.name || '';
    $('device-id').textContent = state.device;
    if (session.name) document.title = `QSync: ${session.name}`;
  } catch (e) {
    showError(e.message, 'action');
    return;
  }
  await refreshAll();
  follow();
  setInterval(scheduleRefresh, 5000);
  // Let finished transfers go from the folders' state.
  setInterval(() => { if (state.live.size) renderFolders(); }, 1000);
}

start();
