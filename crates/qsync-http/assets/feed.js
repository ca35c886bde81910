// QSync web UI, /assets/feed.js: the live feed. Each event of the stream (DaemonEvent, its
// "event" field naming its kind) as one dated line, newest first, at most 200; a run of
// `delivered` from one device is one counted line. `transfer` events are not shown here
// (they are their folder's progress). app.js hands it the events.

import { $, el, clock } from './api.js';
import { taskName } from './folders.js';
import { deviceName } from './lists.js';

/** The most lines the feed keeps. */
const MAX_LINES = 200;

/** An event as one line for the feed (null: not shown there). */
function describe(ev) {
  const who = () => deviceName(ev.device, ev.name);
  switch (ev.event) {
    case 'connected': return `connected to ${who()}`;
    case 'disconnected': return `disconnected from ${who()}`;
    case 'question': return `question: ${ev.context}`;
    case 'applied': return `${ev.deleted ? 'deleted' : 'received'} `
      + `${ev.path || `changes in ${taskName(ev.task)}`} from ${deviceName(ev.from, ev.name)}`;
    case 'applied_more': return `received ${ev.count} more changes in ${taskName(ev.task)}`;
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

/** One event into the feed (the text goes in through el(), as text). */
export function addToFeed(ev) {
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
  while (feed.children.length > MAX_LINES) feed.lastElementChild.remove();
  $('feed-empty').hidden = feed.children.length > 0;
}
