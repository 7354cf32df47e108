// The ARI console's page: draws what GET /api/state answers (agents and their vouchers, payments
// waiting for confirmation, spending per hour), follows the evidence log through the long poll
// of GET /api/events, and sends the operator's actions to POST /api/action.
//
// It never formats money: every amount shown is a `*_display` string from the server. It never
// builds markup from strings (no innerHTML): text from the server only ever lands in textContent
// or an attribute. Under the console's CSP it needs no inline script or style and no eval; sizes
// are set through element.style, which the CSP allows.
'use strict';

/** Most decisions kept in the feed; older ones fall off its end. */
const FEED_LIMIT = 200;
/** Wait before asking the event stream again after a network error or a 5xx answer. */
const RETRY_MS = 1000;
/** Wait after any other refusal of the event stream (a 4xx other than 403). */
const SLOW_RETRY_MS = 5000;
/** The state is fetched again this often even when nothing happens (relative times age). */
const REFRESH_MS = 30000;
/** The server reuses a state answer for up to 2 s: after news, the state is fetched at once
 * and again once that has passed, so the page never settles on figures older than the news. */
const SETTLE_MS = 2500;
/** The reason sent with a rejection made here. */
const REJECT_REASON = 'rejected in the console';

const SVG_NS = 'http://www.w3.org/2000/svg';

// --- DOM building ---------------------------------------------------------------------------

/** An element with attributes (`class`, `data-*`, `aria-*`, ...) and children (nodes or text). */
function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, as `h` builds HTML ones. */
function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

/**
 * Makes `parent`'s children the nodes for `items`, in order, keyed by the attribute `attr`:
 * a node whose key is still there is kept and updated (so a button the operator is about to
 * click is not replaced under the pointer), a new key gets `make(item)`, a gone key is removed.
 */
function reconcile(parent, items, attr, key, make, update) {
  const old = new Map([...parent.children].map((node) => [node.getAttribute(attr), node]));
  let next = parent.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let node = old.get(k);
    if (node) {
      old.delete(k);
    } else {
      node = make(item);
      node.setAttribute(attr, k);
    }
    update(node, item);
    if (node === next) {
      next = next.nextElementSibling;
    } else {
      parent.insertBefore(node, next);
    }
  }
  for (const node of old.values()) {
    node.remove();
  }
}

/** Shows the "nothing here" line of a list when it is empty. */
function setEmpty(name, empty) {
  const note = document.querySelector(`[data-empty-for="${name}"]`);
  if (note) {
    note.hidden = !empty;
  }
}

// --- time -----------------------------------------------------------------------------------

const clock = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
const hourOfDay = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

function date(unix) {
  return new Date(unix * 1000);
}

/** The hour a chart point starts, as the server wrote it (else in the browser's zone). */
function hourLabel(point) {
  return point.label || hourOfDay.format(date(point.t));
}

/** "just now", "5 min ago", "3 h ago", "2 d ago": how long before `now` `then` was. */
function ago(then, now) {
  const seconds = Math.max(0, now - then);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function short(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

// --- server ---------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The error message of a refused answer: its JSON `error`, else the HTTP status. */
async function refusal(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') {
      return new HttpError(response.status, body.error);
    }
  } catch {
    // Not JSON: the status says enough.
  }
  return new HttpError(response.status, `HTTP ${response.status}`);
}

async function getJson(path) {
  const response = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (!response.ok) {
    throw await refusal(response);
  }
  return response.json();
}

async function postAction(body) {
  const response = await fetch('api/action', {
    method: 'POST',
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw await refusal(response);
  }
  const answer = await response.json();
  if (!answer || answer.ok !== true) {
    throw new Error('the server did not confirm the action');
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- actions in flight ----------------------------------------------------------------------

/** The actions sent and not answered yet, as `action:target`; their buttons stay disabled. */
const inFlight = new Set();

/** Points an action button at `target`; disabled while that action runs, or when `spent`. */
function aim(button, target, spent = false) {
  button.dataset.target = target;
  button.disabled = spent || inFlight.has(`${button.dataset.action}:${target}`);
}

// --- status line ----------------------------------------------------------------------------

/** Puts `text` in the status line; `tone` is `ok`, `error` or `busy`. */
function showStatus(text, tone) {
  const line = document.getElementById('status');
  line.textContent = text;
  line.dataset.tone = tone;
}

/** The live indicator: `connecting`, `live`, `reconnecting` or `stopped`. */
function setLive(state) {
  const live = document.getElementById('live');
  if (live.dataset.state === state) return;
  live.dataset.state = state;
  live.textContent = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    stopped: 'not connected',
  }[state];
}

const NOT_AUTHORIZED =
  'This page is no longer authorized (the console restarted?): open the address `arictl console` printed.';

// --- agents and vouchers --------------------------------------------------------------------

function makeAgent(agent) {
  const freeze = h('button', { type: 'button', class: 'freeze', 'data-action': 'freeze' }, 'Freeze');
  const unfreeze = h('button', { type: 'button', class: 'unfreeze', 'data-action': 'unfreeze' }, 'Unfreeze');
  return h('article', { class: 'agent' },
    h('header', { class: 'agent-head' },
      h('h3', { class: 'agent-id' }),
      h('span', { class: 'agent-user' }),
      h('span', { class: 'agent-status badge' }),
      h('span', { class: 'agent-actions' }, freeze, unfreeze)),
    h('table', { class: 'vouchers' },
      h('thead', {},
        h('tr', {},
          h('th', { scope: 'col' }, 'Voucher'),
          h('th', { scope: 'col' }, 'State'),
          h('th', { scope: 'col', class: 'budget-col' }, 'Budget'),
          h('th', { scope: 'col' }, 'Remaining'),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody')),
    h('p', { class: 'empty' }, 'No voucher.'));
}

function updateAgent(node, agent, vouchers, now) {
  node.setAttribute('aria-label', `Agent ${agent.id}`);
  node.dataset.status = agent.status;
  node.querySelector('.agent-id').textContent = agent.id;
  node.querySelector('.agent-user').textContent = agent.user;
  const status = node.querySelector('.agent-status');
  status.textContent = agent.status;
  status.dataset.status = agent.status;
  for (const button of node.querySelectorAll('.agent-actions button')) {
    aim(button, agent.id);
    button.setAttribute('aria-label', `${button.textContent} agent ${agent.id}`);
  }
  node.querySelector('button.freeze').hidden = agent.status !== 'active';
  node.querySelector('button.unfreeze').hidden = agent.status !== 'frozen';
  const mine = vouchers.filter((v) => v.agent === agent.id);
  reconcile(node.querySelector('.vouchers tbody'), mine, 'data-voucher', (v) => v.id,
    makeVoucher, (row, v) => updateVoucher(row, v, now));
  node.querySelector('.vouchers').hidden = mine.length === 0;
  node.querySelector('.empty').hidden = mine.length !== 0;
}

function makeVoucher() {
  return h('tr', {},
    h('td', { class: 'voucher-id' }, h('code'), h('span', { class: 'voucher-terms' })),
    h('td', { class: 'state' },
      h('span', { class: 'voucher-state badge' }), h('span', { class: 'expires' })),
    h('td', { class: 'budget' },
      h('div', { class: 'budget-bar', role: 'img' },
        h('span', { class: 'bar-spent' }), h('span', { class: 'bar-held' })),
      h('span', { class: 'budget-text' })),
    h('td', { class: 'remaining' },
      h('span', { class: 'remaining-amount' }), h('span', { class: 'payments' })),
    h('td', { class: 'row-actions' },
      h('button', { type: 'button', class: 'revoke', 'data-action': 'revoke' }, 'Revoke')));
}

/** The share of the budget `part` is, in percent, at most `room`. */
function share(part, budget, room) {
  return Math.min(room, Math.max(0, (part / budget) * 100));
}

/** A bar segment's width: its share, and at least a sliver when it is not nothing. */
function segment(node, part, percent) {
  node.style.width = part > 0 ? `max(3px, ${percent}%)` : '0';
}

/** The relative part of a time the server wrote as "absolute (relative)", else all of it. */
function relativePart(text) {
  const match = /\(([^()]+)\)\s*$/.exec(text);
  return match ? match[1] : text;
}

function updateVoucher(row, v, now) {
  row.dataset.state = v.state;
  const code = row.querySelector('.voucher-id code');
  code.textContent = short(v.id);
  code.title = v.id;
  const terms = [v.level, v.currency];
  if (v.period) terms.push(v.period.toLowerCase());
  row.querySelector('.voucher-terms').textContent = terms.join(' · ');

  const state = row.querySelector('.voucher-state');
  state.textContent = v.state;
  state.dataset.state = v.state;

  const bar = row.querySelector('.budget-bar');
  const text = row.querySelector('.budget-text');
  if (v.budget === null || v.budget === undefined || v.budget <= 0) {
    bar.hidden = true;
    text.textContent = `no budget · ${v.spent_display} spent`;
  } else {
    bar.hidden = false;
    const spent = share(v.spent, v.budget, 100);
    segment(row.querySelector('.bar-spent'), v.spent, spent);
    segment(row.querySelector('.bar-held'), v.held, share(v.held, v.budget, 100 - spent));
    const label = `${v.spent_display} spent, ${v.held_display} held, of ${v.budget_display}`;
    bar.setAttribute('aria-label', label);
    if (v.held > 0) {
      text.textContent = v.spent > 0
        ? `${v.spent_display} + ${v.held_display} held of ${v.budget_display}`
        : `${v.held_display} held of ${v.budget_display}`;
    } else {
      text.textContent = `${v.spent_display} of ${v.budget_display}`;
    }
  }
  row.querySelector('.remaining-amount').textContent = v.remaining_display;
  row.querySelector('.payments').textContent =
    v.max_payments === null || v.max_payments === undefined
      ? `${v.payments} ${v.payments === 1 ? 'payment' : 'payments'}`
      : `${v.payments} of ${v.max_payments} payments`;
  const expires = row.querySelector('.expires');
  expires.textContent = `${v.expires_at > now ? 'expires' : 'expired'} ${relativePart(v.expires)}`;
  expires.title = v.expires;

  const revoke = row.querySelector('button.revoke');
  aim(revoke, v.id, v.state === 'revoked');
  revoke.setAttribute('aria-label', `Revoke voucher ${v.id}`);
}

function renderAgents(agents, vouchers, now) {
  const list = document.querySelector('#agents .agent-list');
  reconcile(list, agents, 'data-agent', (a) => a.id, makeAgent,
    (node, agent) => updateAgent(node, agent, vouchers, now));
  setEmpty('agents', agents.length === 0);
}

// --- payments waiting for confirmation ------------------------------------------------------

function makePending() {
  return h('tr', {},
    h('td', { class: 'pending-agent' }),
    h('td', { class: 'amount' }),
    h('td', { class: 'payee' }),
    h('td', { class: 'category' }),
    h('td', { class: 'asked' }),
    h('td', { class: 'row-actions' },
      h('button', { type: 'button', class: 'confirm', 'data-action': 'confirm' }, 'Confirm'),
      h('button', { type: 'button', class: 'reject', 'data-action': 'reject' }, 'Reject')));
}

function updatePending(row, p, now) {
  row.querySelector('.pending-agent').textContent = p.agent;
  row.querySelector('.amount').textContent = p.amount_display;
  row.querySelector('.payee').textContent = p.payee;
  row.querySelector('.category').textContent = p.category ?? '—';
  const asked = row.querySelector('.asked');
  asked.textContent = ago(p.created_at, now);
  asked.title = fullDate.format(date(p.created_at));
  const what = `${p.amount_display} to ${p.payee} from ${p.agent}`;
  for (const button of row.querySelectorAll('button')) {
    aim(button, p.decision);
    button.setAttribute('aria-label', `${button.textContent} ${what}`);
  }
}

function renderPending(pending, now) {
  const body = document.querySelector('#pending tbody');
  reconcile(body, pending, 'data-decision', (p) => p.decision, makePending,
    (row, p) => updatePending(row, p, now));
  document.querySelector('#pending table').hidden = pending.length === 0;
  setEmpty('pending', pending.length === 0);
}

// --- spending chart -------------------------------------------------------------------------

const CHART = {
  width: 560,
  panel: 140, // height of one currency's panel
  top: 26, // room for the currency and the highest hour's amount
  bottom: 20, // room for the hour labels
  left: 6,
  right: 6,
  labelEvery: 3, // hours between two hour labels, counted back from the current hour
};

/** One currency's panel: a bar group per hour, the highest hour labelled, hours below. */
function chartPanel(series, index, y0) {
  const { width, panel, top, bottom, left, right, labelEvery } = CHART;
  const plot = panel - top - bottom;
  const base = y0 + top + plot;
  const points = series.points;
  const slot = (width - left - right) / Math.max(points.length, 1);
  const highest = points.reduce((best, p) => (p.amount > best.amount ? p : best),
    { amount: 0, display: null, t: null });

  const g = s('g', { class: `panel series-${index % 4}`, 'data-currency': series.currency });
  g.append(s('text', { class: 'currency', x: left, y: y0 + 14 }, series.currency));
  if (highest.amount > 0) {
    const topY = y0 + top;
    g.append(s('line', { class: 'grid', x1: left, x2: width - right, y1: topY, y2: topY }));
    g.append(s('text', { class: 'axis-label', x: width - right, y: topY - 4, 'text-anchor': 'end' },
      `${highest.display} in the hour from ${hourLabel(highest)}`));
  } else {
    g.append(s('text', { class: 'axis-label', x: width - right, y: y0 + top - 4, 'text-anchor': 'end' },
      'no spending'));
  }
  points.forEach((p, i) => {
    const height = highest.amount > 0 ? (p.amount / highest.amount) * plot : 0;
    const x = left + i * slot;
    const hour = s('g', { class: 'hour', 'data-t': p.t });
    hour.append(s('rect', {
      class: p.amount > 0 ? 'bar' : 'bar zero',
      x: x + slot * 0.15,
      y: base - Math.max(height, 1),
      width: slot * 0.7,
      height: Math.max(height, 1),
      'data-amount': p.amount,
    }, s('title', {}, `${hourLabel(p)}: ${p.display}`)));
    if ((points.length - 1 - i) % labelEvery === 0) {
      hour.append(s('text', {
        class: 'axis-label', x: x + slot / 2, y: base + 14, 'text-anchor': 'middle',
      }, hourLabel(p)));
    }
    g.append(hour);
  });
  g.append(s('line', { class: 'axis', x1: left, x2: width - right, y1: base, y2: base }));
  return g;
}

/** What the chart says, for those who cannot see it. */
function chartSummary(series) {
  if (series.length === 0) return 'No spending recorded.';
  return series.map((c) => {
    const highest = c.points.reduce((best, p) => (p.amount > best.amount ? p : best), c.points[0]);
    if (!highest || highest.amount === 0) return `${c.currency}: no spending.`;
    return `${c.currency}: highest ${highest.display} in the hour from ${hourLabel(highest)}.`;
  }).join(' ');
}

let drawnSeries = null;

function renderChart(series) {
  const key = JSON.stringify(series);
  if (key === drawnSeries) return;
  drawnSeries = key;
  const height = Math.max(series.length, 1) * CHART.panel;
  const chart = s('svg', {
    viewBox: `0 0 ${CHART.width} ${height}`,
    role: 'img',
    'aria-labelledby': 'chart-title chart-desc',
  }, s('desc', { id: 'chart-desc' }, chartSummary(series)));
  if (series.length === 0) {
    chart.append(s('text', { class: 'axis-label', x: CHART.width / 2, y: height / 2, 'text-anchor': 'middle' },
      'No spending recorded.'));
  }
  series.forEach((c, i) => chart.append(chartPanel(c, i, i * CHART.panel)));
  document.getElementById('chart').replaceChildren(chart);
}

// --- state ----------------------------------------------------------------------------------

function render(state) {
  renderAgents(state.agents, state.vouchers, state.now);
  renderPending(state.pending, state.now);
  renderChart(state.series);
}

let refreshing = null;
let refreshAgain = false;

/** Fetches /api/state and draws it; calls made while one runs fold into one more fetch. */
function refreshState() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        refreshAgain = false;
        try {
          render(await getJson('api/state'));
        } catch (e) {
          showStatus(e.status === 403 ? NOT_AUTHORIZED : `Could not load the state: ${e.message}`,
            'error');
        }
      } while (refreshAgain);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

let settling = null;

/** One more state fetch SETTLE_MS after the latest news. */
function settle() {
  clearTimeout(settling);
  settling = setTimeout(refreshState, SETTLE_MS);
}

// --- live feed ------------------------------------------------------------------------------

const TONE = {
  'payment.authorized': 'ok',
  'payment.confirmed': 'ok',
  'payment.reported': 'info',
  'payment.pending': 'warn',
  'payment.denied': 'bad',
  'payment.rejected': 'bad',
  'payment.voided': 'bad',
  'agent.frozen': 'warn',
  'agent.unfrozen': 'ok',
  'agent.retired': 'bad',
  'agent.provisioned': 'info',
  'voucher.issued': 'info',
  'voucher.delegated': 'info',
  'voucher.revoked': 'bad',
};

function kindLabel(kind) {
  return kind.startsWith('payment.') ? kind.slice('payment.'.length) : kind.replace('.', ' ');
}

function feedItem(e) {
  const when = date(e.time);
  return h('li', {
    'data-kind': e.kind,
    'data-index': e.index,
    'data-decision': e.decision,
    'data-tone': TONE[e.kind] ?? 'info',
  },
  h('time', { datetime: when.toISOString(), title: fullDate.format(when) },
    e.clock || clock.format(when)),
  h('span', { class: 'kind' }, kindLabel(e.kind)),
  h('span', { class: 'text' }, e.text),
  e.reason && !e.text.includes(e.reason) ? h('span', { class: 'reason' }, e.reason) : null);
}

const shown = new Set();

/** Adds the events not shown yet, newest at the top, and trims the feed to FEED_LIMIT. */
function addEvents(events) {
  const feed = document.getElementById('feed');
  const fresh = events.filter((e) => !shown.has(e.index)).sort((a, b) => a.index - b.index);
  for (const e of fresh) {
    shown.add(e.index);
    // Newest first: before the first item older than this one.
    const older = [...feed.children].find((li) => Number(li.dataset.index) < e.index);
    feed.insertBefore(feedItem(e), older ?? null);
  }
  while (feed.children.length > FEED_LIMIT) {
    shown.delete(Number(feed.lastElementChild.dataset.index));
    feed.lastElementChild.remove();
  }
  setEmpty('feed', feed.children.length === 0);
  return fresh.length;
}

/** Follows the evidence log for as long as the page is open. */
async function follow() {
  let from = null;
  for (;;) {
    try {
      const answer = await getJson(from === null ? 'api/events' : `api/events?from=${from}`);
      setLive('live');
      from = answer.next;
      if (addEvents(answer.events) > 0) {
        refreshState();
        settle();
      }
    } catch (e) {
      if (e.status === 403) {
        setLive('stopped');
        showStatus(NOT_AUTHORIZED, 'error');
        return;
      }
      setLive('reconnecting');
      await sleep(e.status >= 400 && e.status < 500 ? SLOW_RETRY_MS : RETRY_MS);
    }
  }
}

// --- actions --------------------------------------------------------------------------------

/** Per action: the field that names its target, and what the status line says. */
const ACTIONS = {
  confirm: { field: 'decision', busy: 'Confirming the payment…', done: () => 'Payment confirmed.' },
  reject: { field: 'decision', busy: 'Rejecting the payment…', done: () => 'Payment rejected.' },
  freeze: { field: 'agent', busy: 'Freezing…', done: (id) => `Agent ${id} frozen.` },
  unfreeze: { field: 'agent', busy: 'Unfreezing…', done: (id) => `Agent ${id} unfrozen.` },
  revoke: { field: 'voucher', busy: 'Revoking…', done: (id) => `Voucher ${short(id)} revoked.` },
};

async function act(button) {
  const name = button.dataset.action;
  const action = ACTIONS[name];
  const target = button.dataset.target;
  if (!action || !target) return;
  if (name === 'revoke'
    && !window.confirm(`Revoke voucher ${target}? Its agent can no longer pay with it; this cannot be undone.`)) {
    return;
  }
  const body = { action: name, [action.field]: target };
  if (name === 'reject') body.reason = REJECT_REASON;
  const key = `${name}:${target}`;
  inFlight.add(key);
  button.disabled = true;
  showStatus(action.busy, 'busy');
  try {
    await postAction(body);
    showStatus(action.done(target), 'ok');
  } catch (e) {
    showStatus(e.status === 403 ? NOT_AUTHORIZED : `Could not ${name}: ${e.message}`, 'error');
    button.disabled = false;
  } finally {
    // The next drawing sets the button again (enabled, hidden, gone or spent).
    inFlight.delete(key);
    await refreshState();
    if (button.hidden && document.activeElement === document.body) {
      // Freeze became Unfreeze (or back): keep the keyboard where it was.
      button.parentElement.querySelector('button:not([hidden])')?.focus();
    }
  }
}

document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (button && !button.disabled) {
    act(button);
  }
});

refreshState();
follow();
setInterval(refreshState, REFRESH_MS);
