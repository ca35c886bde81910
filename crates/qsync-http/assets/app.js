// QSync web UI: the page's only script, served as /assets/app.js (the Content-Security-
// Policy allows no inline script). It reads the daemon's state over the HTTP API of the
// qsync-http crate (src/routes.rs), follows its event stream (src/sse.rs), and draws the
// folders, devices, questions, conflicts and a live feed into index.html.
//
// The JSON it reads is the serde form of crates/qsync-control/src/lib.rs: replies carry
// a "reply" field (Reply::Tasks {tasks}, Reply::OutOfSync {task, paths}, ...), events an
// "event" field (DaemonEvent), ids are strings. Text from the daemon only ever goes into
// the page as text (el() below uses textContent and text nodes), never as HTML.
'use strict';

/** What the page knows: filled by refreshAll(), and by events between refreshes. */
const state = {
  csrf: '', // the session's CSRF token, sent back with every change
  device: '', // this device's id
  tasks: [], // [TaskInfo]
  status: null, // Status
  outOfSync: new Map(), // task id -> [NotInSync] (Reply::OutOfSync's `paths`)
  devices: [], // [DeviceInfo]
  live: new Map(), // "task\npath" -> {info: TransferInfo, seen: ms}, from `transfer` events
  discovered: [], // [NearbyInfo], read while a link form is open
};

const $ = (id) => document.getElementById(id);

/** Text from elsewhere (a device's name, a path a peer sent) as the page may show it:
 * control characters and the invisible ones that reorder or hide text (a name could
 * otherwise fake the fingerprint shown next to it) appear escaped, as the CLI shows them
 * (qsync-control's `printable`). */
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
function clean(text) {
  return String(text).replace(HIDDEN, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}

/** The session's page token: handed over once in the address's fragment by the login,
 * then kept in this origin's storage (another port of this host cannot read it, unlike
 * the cookie), and sent with every call. */
function pageToken() {
  const given = new URLSearchParams(window.location.hash.slice(1)).get('csrf');
  if (given) {
    window.localStorage.setItem('qsync-csrf', given);
    window.history.replaceState(null, '', '/');
  }
  return window.localStorage.getItem('qsync-csrf') || '';
}
const enc = encodeURIComponent;

/** An element: el('li', {class: 'x', 'data-task': id, text: '...'}, child, 'text', ...).
 * Children: nodes, and strings (as text nodes); anything else ('', null, false, 0: what
 * `x && 'text'` gives when x is not there) is skipped. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = clean(value);
    else if (key.includes('-') || key === 'spellcheck') node.setAttribute(key, value);
    else node[key] = value; // type, placeholder, required, hidden, ...
  }
  node.append(...children
    .filter((c) => c instanceof Node || (typeof c === 'string' && c))
    .map((c) => (typeof c === 'string' ? clean(c) : c)));
  return node;
}

/** A plain button (not a form's submit) that runs `click`. */
function button(cls, text, click) {
  const b = el('button', { type: 'button', class: cls, text });
  b.addEventListener('click', () => click(b));
  return b;
}

// ==== The API: one JSON call; a failure is an Error whose message is the server's.
async function api(method, path, body) {
  const init = { method, credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': state.csrf } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init).catch((e) => {
    throw new Error(`Cannot reach QSync's web server (${e.message}): is the QSync daemon running?`);
  });
  if (response.status === 401) {
    window.location.assign('/login'); // the session ended
    throw new Error('The session ended: log in again.');
  }
  const data = await response.json().catch(() => null); // not JSON: the status says enough
  if (response.status === 403 && data && data.error && data.error.kind === 'csrf') {
    window.location.assign('/login'); // this page has no token of the session: log in again
    throw new Error('Log in again.');
  }
  if (!response.ok) {
    // {"error": {"kind": ..., "message": ...}}
    throw new Error((data && data.error && data.error.message)
      || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** The error area. `from` is 'refresh' or 'action': a good refresh clears only its own. */
let errorFrom = null;
function showError(message, from) {
  $('error').textContent = message;
  $('error').hidden = $('error-dismiss').hidden = false;
  errorFrom = from;
}
function clearError(from) {
  if (from && errorFrom !== from) return;
  $('error').textContent = '';
  $('error').hidden = $('error-dismiss').hidden = true;
  errorFrom = null;
}

/** Run what a button asks: once at a time per button, its failure shown, then a refresh.
 * (aria-disabled rather than disabled: a disabled button would lose the keyboard focus.) */
async function act(b, work) {
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

// ==== Words and numbers for people.
function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function clock(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((n) => String(n).padStart(2, '0')).join(':');
}

/** A device's name: the event's, else the devices list's, else its id's start. */
function deviceName(id, given) {
  if (given) return given;
  if (id && id === state.device) return 'this device';
  const known = state.devices.find((d) => d.device === id);
  return known ? known.name : String(id || '?').slice(0, 9);
}

function taskName(id) {
  const task = state.tasks.find((t) => t.task === id);
  return task ? task.name : String(id).slice(0, 9);
}

// ==== Lists kept in place: a refresh updates the <li> it already has for an item (so a
// half-typed answer, an open link form or the keyboard focus survives), adds new ones
// and drops those gone.
function syncList(list, items, keyOf, make, update) {
  const old = new Map([...list.children].map((li) => [li.dataset.key, li]));
  items.forEach((item, i) => {
    const key = keyOf(item);
    let li = old.get(key);
    old.delete(key);
    if (!li) (li = make(item)).dataset.key = key;
    if (update) update(li, item);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const li of old.values()) li.remove();
}

// ==== Folders.
/** The transfers of a task now: the last status's, and the fresher `transfer` events. */
function transfersOf(taskId) {
  const byPath = new Map();
  for (const t of (state.status && state.status.transfers) || []) {
    if (t.task === taskId) byPath.set(t.path, t);
  }
  for (const [key, entry] of state.live) {
    if (Date.now() - entry.seen > 3000) state.live.delete(key); // finished, or stalled
    else if (entry.info.task === taskId) byPath.set(entry.info.path, entry.info);
  }
  return [...byPath.values()];
}

/** "42% · 12.3 MB/s" (a patch's bytes are not the file's: patches count in the rate only). */
function progressText(transfers) {
  let [done, size, rate] = [0, 0, 0];
  for (const t of transfers) {
    rate += t.rate;
    if (!t.patch) { done += t.done; size += t.size; }
  }
  const parts = [];
  if (size > 0) parts.push(`${Math.floor((done * 100) / size)}%`);
  parts.push(`${bytes(rate)}/s`);
  if (transfers.length > 1) parts.push(`${transfers.length} files`);
  return parts.join(' · ');
}

/** A task's state: paused, else syncing (a transfer), else out of sync, else in sync. */
function taskState(task) {
  if (task.paused) return { name: 'paused', progress: '' };
  const moving = transfersOf(task.task);
  if (moving.length) return { name: 'syncing', progress: progressText(moving) };
  const n = (state.outOfSync.get(task.task) || []).length;
  if (n) return { name: 'out of sync', progress: `${n} item${n === 1 ? '' : 's'}` };
  return { name: 'in sync', progress: '' };
}

/** The <li> of a new task: its parts, its buttons and its (hidden) link form. */
function makeFolder(task) {
  const id = task.task;
  const address = el('input', { class: 'link-address', type: 'text', placeholder: 'host:port',
    required: true, autocomplete: 'off', spellcheck: 'false' });
  const nearby = el('select', { class: 'link-nearby' });
  // A device picked among the nearby ones must be the one that answers there (mDNS is
  // only a claim: the link proves the device's key); typing an address drops that.
  nearby.addEventListener('change', () => {
    const picked = nearby.selectedOptions[0];
    if (!nearby.value || !picked) return;
    address.value = nearby.value;
    address.dataset.expect = picked.dataset.device;
  });
  address.addEventListener('input', () => { delete address.dataset.expect; });
  const form = el('form', { class: 'link-form', hidden: true },
    el('label', {}, 'Address of the other device', address),
    el('label', {}, 'Nearby devices', nearby),
    el('button', { type: 'submit', class: 'link-go', text: 'Link' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); startLink(li, id); });
  const link = button('link', 'Link a device', () => {
    form.hidden = !form.hidden;
    link.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) { address.focus(); loadDiscovered(); }
  });
  link.setAttribute('aria-expanded', 'false');
  const remove = button('remove', 'Remove', (b) => {
    const now = state.tasks.find((t) => t.task === id) || task;
    if (window.confirm(`Stop syncing “${now.name}” on this device?\n\n`
      + `No file is touched: the folder ${now.root} stays as it is.`)) {
      act(b, () => api('DELETE', `/rest/tasks/${enc(id)}`, {}));
    }
  });
  const li = el('li', { class: 'folder', 'data-task': id },
    el('div', { class: 'folder-head' }, el('h3', { class: 'name' }),
      el('span', { class: 'state' }), el('span', { class: 'progress' })),
    el('p', { class: 'root' }),
    el('p', { class: 'muted' }, 'Linked devices: ', el('span', { class: 'devices' })),
    el('details', { class: 'why', hidden: true },
      el('summary', { text: 'What is not in sync, and why' }), el('ul')),
    el('div', { class: 'actions' }, link, remove),
    form,
    el('div', { class: 'link-box' },
      el('p', { class: 'link-status', 'aria-live': 'polite' }),
      el('p', { class: 'link-hint', 'aria-live': 'polite', hidden: true,
        text: 'On the other device, answer the link question with this code and the folder' }),
      el('strong', { class: 'link-code', 'aria-live': 'polite' })));
  return li;
}

/** Bring a task's <li> up to date. */
function updateFolder(li, task) {
  const part = (selector) => li.querySelector(selector);
  part('.name').textContent = clean(task.name);
  part('.root').textContent = clean(task.root);
  part('.devices').textContent = String(task.devices);
  const now = taskState(task);
  part('.state').textContent = now.name;
  part('.state').className = `state state-${now.name.replace(/ /g, '-')}`;
  part('.progress').textContent = now.progress;
  part('.progress').hidden = !now.progress;
  // What is not in sync: redrawn only when it changed, so an open <details> stays open.
  const items = now.name === 'out of sync' ? state.outOfSync.get(task.task) : [];
  const why = part('.why');
  why.hidden = items.length === 0;
  if (why.dataset.items !== JSON.stringify(items)) {
    why.dataset.items = JSON.stringify(items);
    why.querySelector('ul').replaceChildren(...items.map((item) => el('li', {},
      el('span', { class: 'path', text: item.path || '(the whole folder)' }),
      `: ${String(item.why).replace(/_/g, ' ')}`, // NotInSyncWhy, snake_case
      item.device && ` (${item.device})`,
      item.seconds && `, for ${item.seconds} s`,
      item.detail && `. ${item.detail}`)));
  }
  // Exactly one of Pause / Resume, swapped when the state turns (keeping the focus).
  const want = task.paused ? 'resume' : 'pause';
  const old = part('button.pause, button.resume');
  if (!old || !old.classList.contains(want)) {
    const fresh = button(want, task.paused ? 'Resume' : 'Pause',
      (b) => act(b, () => api('POST', `/rest/tasks/${enc(task.task)}/${want}`, {})));
    const focused = old && old === document.activeElement;
    if (old) old.replaceWith(fresh); else part('.actions').prepend(fresh);
    if (focused) fresh.focus();
  }
  updateNearby(part('.link-nearby'));
}

function renderFolders() {
  syncList($('folders'), state.tasks, (t) => t.task, makeFolder, updateFolder);
  $('folders-empty').hidden = state.tasks.length > 0;
}

// ==== Linking a folder with another device.
/** The nearby devices (mDNS), for the link forms' choice. */
async function loadDiscovered() {
  try {
    state.discovered = (await api('GET', '/rest/discovered')).devices || [];
  } catch (e) {
    showError(e.message, 'action'); // not cleared by the next good refresh
  }
  for (const select of document.querySelectorAll('.link-nearby')) updateNearby(select);
}

/** A link form's choice of nearby devices, one option per address; rebuilt only when the
 * list changed (not under the person's hand). */
function updateNearby(select) {
  const key = JSON.stringify(state.discovered);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const none = state.discovered.length ? 'Choose one to fill the address…' : 'None found here';
  const options = [el('option', { value: '', text: none })];
  for (const d of state.discovered) {
    for (const address of d.addresses) {
      const label = `${d.name} (${d.device.slice(0, 19)})${d.linked ? ', linked' : ''}: ${address}`;
      options.push(el('option', { value: address, text: label, 'data-device': d.device }));
    }
  }
  select.replaceChildren(...options);
}

/** POST /rest/link: answered with Reply::LinkCode {device, fingerprint, code} as soon as
 * the other device answered; how the link ends comes later, as a `link_ended` event. */
async function startLink(li, taskId) {
  const input = li.querySelector('.link-address');
  const address = input.value.trim();
  const expect = input.dataset.expect || null;
  const [status, hint, code] = ['.link-status', '.link-hint', '.link-code']
    .map((selector) => li.querySelector(selector));
  code.textContent = '';
  hint.hidden = true;
  status.textContent = `Reaching ${address}…`;
  li.dataset.linking = '1';
  await act(li.querySelector('.link-go'), async () => {
    const reply = await api('POST', '/rest/link', { task: taskId, address, expect })
      .catch((e) => { status.textContent = ''; delete li.dataset.linking; throw e; });
    if (reply.reply === 'link_code') {
      status.textContent = `The device that answered is ${clean(reply.fingerprint)}. `
        + 'Waiting for its person…';
      hint.hidden = false;
      code.textContent = reply.code;
    } else { // it ended at once (Reply::Linked)
      status.textContent = `Linked with ${clean(reply.name || 'the other device')}.`;
      delete li.dataset.linking;
    }
  });
}

/** The `link_ended` event: its outcome where the code was shown. */
function linkEnded(ev) {
  const li = [...$('folders').children].find((x) => x.dataset.task === ev.task);
  if (!li || !li.dataset.linking) return; // not a link this page started: the feed has it
  delete li.dataset.linking;
  li.querySelector('.link-code').textContent = '';
  li.querySelector('.link-hint').hidden = true;
  li.querySelector('.link-status').textContent = ev.ok
    ? `Linked: ${ev.message}` : `The link did not happen: ${ev.message}`;
  if (ev.ok) li.querySelector('.link-form').hidden = true;
}

// ==== Devices, questions, conflicts.
/** The linked devices: name, fingerprint (the id's first four groups, as the CLI shows
 * it), whether connected, where last reached. */
function renderDevices() {
  const make = (d) => el('li', { class: 'device', 'data-device': d.device });
  syncList($('devices'), state.devices, (d) => d.device, make, (li, d) => li.replaceChildren(
    el('p', {}, el('span', { class: 'name', text: d.name }), ' ',
      el('span', { class: 'fingerprint muted', text: d.device.slice(0, 19) })),
    el('p', {},
      el('span', { class: `connected ${d.connected ? 'yes' : 'no'}`,
        text: d.connected ? 'connected' : 'not connected' }),
      d.paused && ' · paused',
      d.address && ' · ', d.address && el('span', { class: 'address', text: d.address }))));
  $('devices-empty').hidden = state.devices.length > 0;
}

/** A question's <li>: made once, so that what the person types stays across refreshes. */
function makeQuestion(q) {
  const li = el('li', { class: 'question', 'data-id': q.id, 'data-flag': q.flag },
    el('p', { class: 'context', text: q.context }));
  const send = (b, text) => act(b, async () => {
    await api('POST', `/rest/questions/${enc(q.id)}/answer`, { text });
    li.remove();
    renderEmpties();
  });
  const refuse = button('refuse', 'Refuse', (b) => send(b, '')); // an empty answer refuses
  if (q.flag === 'CONFIRMSEND' || q.flag === 'CONFIRMSENSITIVE') { // "yes" goes on
    refuse.textContent = 'No';
    li.append(el('div', { class: 'actions' },
      button('answer-yes', 'Yes', (b) => send(b, 'yes')), refuse));
    return li;
  }
  // CHOOSELINKPATH: code + " " + folder; CONFIRMJOIN: the code; another flag: free text.
  const known = q.flag === 'CHOOSELINKPATH' || q.flag === 'CONFIRMJOIN';
  const field = (cls, placeholder) => el('input', { class: cls, type: 'text', required: true,
    autocomplete: 'off', spellcheck: 'false', placeholder });
  const code = field(known ? 'answer-code' : 'answer-text', known ? '1234-5678' : '');
  const folder = q.flag === 'CHOOSELINKPATH' ? field('answer-folder', '/home/me/Shared') : null;
  const accept = el('button', { type: 'submit', class: 'answer', text: 'Accept' });
  const form = el('form', {},
    el('label', {}, known ? 'Code shown on the other device' : 'Answer', code),
    folder && el('label', {}, 'Folder here', folder),
    el('div', { class: 'actions' }, accept, refuse));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send(accept, folder ? `${code.value.trim()} ${folder.value.trim()}` : code.value.trim());
  });
  li.append(form);
  return li;
}

/** A conflict's <li>: the two versions, and the three ways to settle it. */
function makeConflict(c) {
  // "by laptop, 1.2 kB, 3/2/2025, 12:03:04" (times are nanoseconds since the epoch)
  const about = (device, size, ns) => [device && `by ${device}`,
    typeof size === 'number' && bytes(size), ns && new Date(ns / 1e6).toLocaleString()]
    .filter(Boolean).join(', ');
  const here = about(c.original_device, c.original_size, c.original_mtime_ns);
  const resolve = (keep) => (b) => act(b, async () => {
    // The copy's absolute path: its task's folder + its path in the task.
    const root = (state.tasks.find((t) => t.task === c.task) || { root: '' }).root;
    const sep = root.includes('\\') && !root.includes('/') ? '\\' : '/';
    await api('POST', '/rest/resolve', { path: root.replace(/[\\/]+$/, '') + sep + c.copy, keep });
    li.remove();
    renderEmpties();
  });
  const li = el('li', { class: 'conflict', 'data-task': c.task },
    el('p', {}, el('strong', { class: 'path', text: c.original || c.copy }),
      ` in ${taskName(c.task)}`),
    el('p', { class: 'muted' }, `This: the file there now (${here || 'gone'}).`),
    el('p', { class: 'muted' }, 'Other: the copy ', el('span', { class: 'path', text: c.copy }),
      ` (${about(c.copy_device, c.copy_size, c.copy_mtime_ns)}).`),
    el('div', { class: 'actions' }, button('keep-this', 'Keep this', resolve('this')),
      button('keep-other', 'Keep other', resolve('other')),
      button('keep-both', 'Keep both', resolve('both'))));
  return li;
}

/** The "nothing here" lines, shown when their list is empty. */
function renderEmpties() {
  for (const name of ['questions', 'conflicts', 'feed']) {
    $(`${name}-empty`).hidden = $(name).children.length > 0;
  }
  $('conflicts').hidden = $('conflicts').children.length === 0;
}

// ==== Refreshing: everything at once, at most once per 500 ms, and every 5 s anyway.
let refreshTimer = null;
let lastRefresh = 0;
let refreshing = false;

function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + 500 - Date.now());
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshAll(); }, wait);
}

async function refreshAll() {
  if (refreshing) { scheduleRefresh(); return; }
  refreshing = true;
  lastRefresh = Date.now();
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
    syncList($('questions'), questions.questions, (q) => q.id, makeQuestion);
    syncList($('conflicts'), conflicts.conflicts, (c) => `${c.task}\n${c.copy}`, makeConflict);
    renderEmpties();
    clearError('refresh');
  } catch (e) {
    showError(e.message, 'refresh');
  } finally {
    refreshing = false;
  }
}

// ==== The event stream and the live feed.
/** An event as one line for the feed (null: not shown there). */
function describe(ev) {
  const who = () => deviceName(ev.device, ev.name);
  switch (ev.event) {
    case 'connected': return `connected to ${who()}`;
    case 'disconnected': return `disconnected from ${who()}`;
    case 'question': return `question: ${ev.context}`;
    case 'applied': return `${ev.deleted ? 'deleted' : 'received'} `
      + `${ev.path || `changes in ${taskName(ev.task)}`} from ${deviceName(ev.from, ev.name)}`;
    case 'conflict':
      return `conflict in ${taskName(ev.task)}: the other version is kept as ${ev.kept_as}`;
    case 'delivered': return `${who()} received an update`;
    case 'link_ended':
      return `link of ${taskName(ev.task)} ${ev.ok ? 'made' : 'failed'}: ${ev.message}`;
    case 'task_changed': return `folder ${taskName(ev.task)} changed`;
    case 'changed': return ev.path
      ? `${ev.deleted ? 'deleted' : 'changed'} here: ${ev.path}`
      : `${ev.more} more changes here in ${taskName(ev.task)}`;
    case 'missed': return 'some events were missed: the whole view was read again';
    case 'transfer': return null; // too chatty: shown as progress on its folder instead
    default: return String(ev.event);
  }
}

function addToFeed(ev) {
  let text = describe(ev);
  if (text === null) return;
  const feed = $('feed');
  const top = feed.firstElementChild;
  let count = 1;
  if (ev.event === 'delivered' && top && top.dataset.device === ev.device) {
    // A run of acknowledgements from one device: one line, counted, not a flood.
    count = Number(top.dataset.count) + 1;
    text = `${deviceName(ev.device)} received ${count} updates`;
    top.remove();
  }
  const when = new Date(ev.at || Date.now());
  const li = el('li', { class: 'event', 'data-kind': ev.event },
    el('time', { dateTime: when.toISOString(), text: clock(when) }), ` ${text}`);
  if (ev.event === 'delivered') Object.assign(li.dataset, { device: ev.device, count });
  feed.prepend(li);
  while (feed.children.length > 200) feed.lastElementChild.remove();
  renderEmpties();
}

/** Events after which something on the page may have changed. */
const CHANGES = new Set(['applied', 'conflict', 'connected', 'disconnected', 'question',
  'link_ended', 'task_changed', 'missed']);

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
  if (CHANGES.has(ev.event)) scheduleRefresh();
}

/** Follow /rest/events. The browser reconnects by itself (sending Last-Event-ID); if it
 * gives up (the stream answered an error), check the session and start a new one. */
let lastEventId = null;
function follow() {
  const since = lastEventId ? `&since=${enc(lastEventId)}` : '';
  const source = new EventSource(`/rest/events?csrf=${enc(state.csrf)}${since}`);
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

// ==== Start: the session (CSRF token, who we are), the forms, the first read, the stream.
async function start() {
  $('error-dismiss').addEventListener('click', () => clearError());
  $('logout').addEventListener('click', () => fetch('/logout', { method: 'POST',
    credentials: 'same-origin', headers: { 'X-CSRF-Token': state.csrf } })
    .finally(() => window.location.assign('/login')));
  $('add-folder-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const path = $('add-folder-path').value.trim();
    const name = $('add-folder-name').value.trim() || null;
    act($('add-folder'), async () => {
      await api('POST', '/rest/tasks', { path, name, folder_type: $('add-folder-type').value });
      $('add-folder-path').value = $('add-folder-name').value = '';
    });
  });
  try {
    state.csrf = pageToken();
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
