/**
 * The operator console (SPEC section 15): sign in with the admin token, search a customer, see
 * their cards as Plain renders them with each card's state, act on them, and watch the live
 * overview. Routes live in the URL fragment: `#/` (overview and configured cards) and
 * `#/customer/<workspaceId>/<customerId>`.
 */
import { AdminError, api, session } from './api.js';
import { mount } from './dom.js';
import { duration, percent, relativeTime } from './format.js';
import { formatDateTime, renderComponents } from './render-components.js';
import { h, type VNode } from './vnode.js';
import type { CardListingEntry, LoggedEvent, OverviewAnswer, WireCard, WireCustomer } from './wire.js';

const root = document.getElementById('app')!;
const OVERVIEW_EVERY_MS = 5000;
const REFRESH_WATCH_MS = 20_000;

let overviewTimer: number | undefined;
let previousOverview: { answer: OverviewAnswer; at: number } | null = null;
/** Messages shown under a card after an action, by card id; kept across re-renders. */
const cardNotes = new Map<string, { text: string; kind: 'info' | 'error' }>();

// ---------------------------------------------------------------------------------------------
// Sign-in

function showLogin(error?: string): void {
  stopOverview();
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const input = document.getElementById('token') as HTMLInputElement;
    const token = input.value.trim();
    if (!token) return;
    try {
      await api.verify(token);
      session.signIn(token);
      showShell();
    } catch (err) {
      const message =
        err instanceof AdminError && err.status === 401
          ? 'That admin token was refused (401). Enter the value of admin.token from the cardproxy config.'
          : `Could not sign in: ${errorText(err)}`;
      showLogin(message);
    }
  };
  mount(
    root,
    h(
      'main',
      { class: 'login' },
      h('h1', null, 'cardproxy console'),
      h('p', { class: 'muted' }, 'Enter the admin token once; it is kept for this browser tab only.'),
      h(
        'form',
        { on: { submit: (e) => void submit(e) } },
        h('label', { for: 'token' }, 'Admin token'),
        h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true }),
        h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
        error ? h('p', { class: 'alert', role: 'alert' }, error) : null,
      ),
    ),
  );
  (document.getElementById('token') as HTMLInputElement | null)?.focus();
}

/** Any call refused with 401 after sign-in means the token changed: back to the sign-in form. */
function handleFailure(err: unknown): string {
  if (err instanceof AdminError && err.status === 401) {
    session.signOut();
    showLogin('The admin token is no longer accepted. Sign in again.');
  }
  return errorText(err);
}

function errorText(err: unknown): string {
  if (err instanceof AdminError) return err.status > 0 ? `${err.message} (${err.status} ${err.code})` : err.message;
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Shell and routing

function showShell(): void {
  mount(
    root,
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/' }, 'cardproxy console'),
      searchForm(),
      h('button', { type: 'button', class: 'quiet', on: { click: () => (session.signOut(), showLogin()) } }, 'Sign out'),
    ),
    h('main', { id: 'view', tabindex: '-1' }),
  );
  void route();
}

function view(): HTMLElement {
  return document.getElementById('view')!;
}

async function route(): Promise<void> {
  if (session.token() === null || !document.getElementById('view')) return;
  stopOverview();
  const match = /^#\/customer\/([^/]+)\/([^/]+)$/.exec(location.hash);
  if (match) await showCustomer(decodeURIComponent(match[1]!), decodeURIComponent(match[2]!));
  else await showHome();
}

function customerHash(workspaceId: string, customerId: string): string {
  return `#/customer/${encodeURIComponent(workspaceId)}/${encodeURIComponent(customerId)}`;
}

// ---------------------------------------------------------------------------------------------
// Search

function searchForm(): VNode {
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const kind = (document.getElementById('search-kind') as HTMLSelectElement).value as 'customerId' | 'email' | 'externalId';
    const value = (document.getElementById('search-value') as HTMLInputElement).value.trim();
    const results = document.getElementById('search-results')!;
    if (!value) return;
    try {
      const { customers } = await api.searchCustomers(kind, value);
      if (customers.length === 1) {
        mount(results);
        location.hash = customerHash(customers[0]!.workspaceId, customers[0]!.customerId);
        return;
      }
      mount(
        results,
        customers.length === 0
          ? h('p', { role: 'status' }, `No cached customer has that ${kind === 'customerId' ? 'id' : kind === 'email' ? 'email' : 'external id'}.`)
          : h('ul', { class: 'results' }, customers.map((c) => h('li', null, h('a', { href: customerHash(c.workspaceId, c.customerId) }, describeCustomer(c))))),
      );
    } catch (err) {
      mount(results, h('p', { class: 'alert', role: 'alert' }, handleFailure(err)));
    }
  };
  return h(
    'form',
    { class: 'search', role: 'search', on: { submit: (e) => void submit(e) } },
    h('label', { for: 'search-kind', class: 'visually-hidden' }, 'Search by'),
    h(
      'select',
      { id: 'search-kind' },
      h('option', { value: 'customerId' }, 'Customer id'),
      h('option', { value: 'email' }, 'Email'),
      h('option', { value: 'externalId' }, 'External id'),
    ),
    h('label', { for: 'search-value', class: 'visually-hidden' }, 'Customer'),
    h('input', { id: 'search-value', type: 'search', placeholder: 'c_01… or alex@example.com', autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Find customer'),
    h('div', { id: 'search-results', 'aria-live': 'polite' }),
  );
}

function describeCustomer(c: WireCustomer): string {
  return [c.customerId, c.email, c.externalId ? `external id ${c.externalId}` : null, `workspace ${c.workspaceId}`].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Home: live overview and configured cards

async function showHome(): Promise<void> {
  document.title = 'cardproxy console';
  mount(
    view(),
    h('section', { 'aria-labelledby': 'overview-title' }, h('h1', { id: 'overview-title' }, 'Live overview'), h('div', { id: 'overview', 'aria-live': 'off' }, 'Loading…')),
    h('section', { 'aria-labelledby': 'cards-title' }, h('h1', { id: 'cards-title' }, 'Configured cards'), h('div', { id: 'configured-cards' }, 'Loading…')),
  );
  await Promise.all([refreshOverview(), showConfiguredCards()]);
  overviewTimer = window.setInterval(() => void refreshOverview(), OVERVIEW_EVERY_MS);
}

function stopOverview(): void {
  if (overviewTimer !== undefined) window.clearInterval(overviewTimer);
  overviewTimer = undefined;
}

async function refreshOverview(): Promise<void> {
  const target = document.getElementById('overview');
  if (!target) return stopOverview();
  try {
    const answer = await api.overview();
    const now = Date.now();
    mount(target, overviewView(answer, previousOverview, now));
    previousOverview = { answer, at: now };
  } catch (err) {
    mount(target, h('p', { class: 'alert', role: 'alert' }, `Overview unavailable: ${handleFailure(err)}`));
  }
}

const sum = (values: Readonly<Record<string, number>>): number => Object.values(values).reduce((a, b) => a + b, 0);
const diff = (a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>> | undefined): Record<string, number> =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b?.[k] ?? 0)]));

function overviewView(o: OverviewAnswer, prev: { answer: OverviewAnswer; at: number } | null, now: number): VNode {
  const seconds = prev ? (now - prev.at) / 1000 : 0;
  const rate = prev && seconds > 0 ? `${((o.requests - prev.answer.requests) / seconds).toFixed(2)} /s now` : 'measuring the rate…';
  const lookups = prev ? diff(o.lookups, prev.answer.lookups) : o.lookups;
  const hits = (lookups.fresh ?? 0) + (lookups.stale ?? 0);
  const tiles = [
    tile('Requests to /cards', String(o.requests), rate),
    tile('Hit rate', percent(hits, sum(lookups)), prev ? 'fresh + stale, last 5 s' : 'fresh + stale, since start'),
    tile('Fresh hits', percent(o.lookups.fresh ?? 0, sum(o.lookups)), 'since start'),
    tile('Budget exhausted', String(o.budgetExhausted), 'placeholders served after budgetMs'),
  ];
  const sources = ['cache', 'stale', 'refreshed', 'placeholder', 'error'];
  const served = sum(o.served);
  return h(
    'div',
    { class: 'overview' },
    h('div', { class: 'tiles' }, tiles),
    h(
      'div',
      { class: 'panels' },
      h(
        'figure',
        { class: 'panel' },
        h('figcaption', null, 'Cards served by source'),
        h(
          'ul',
          { class: 'bars' },
          sources.map((s) =>
            h('li', null, h('span', { class: 'bar-label' }, s), bar(s, o.served[s] ?? 0, served), h('span', { class: 'bar-value' }, String(o.served[s] ?? 0))),
          ),
        ),
      ),
      table(
        'Refresh queue per upstream',
        ['upstream', 'waiting', 'active', 'delayed', 'failed'],
        o.queues.map((q) => [q.upstream, q.waiting, q.active, q.delayed, q.failed].map(String)),
      ),
      table(
        'Upstream calls',
        ['upstream', 'calls', 'error rate', 'mean', 'p95 ≤'],
        o.upstreams.map((u) => [u.upstream, String(u.calls), percent(u.errors, u.calls), duration(u.calls ? u.totalSeconds / u.calls : null), duration(u.p95Seconds)]),
      ),
      o.webhooks ? table('Plain webhooks', ['outcome', 'count'], Object.entries(o.webhooks).map(([k, v]) => [k, String(v)])) : null,
      o.warming
        ? table(
            'Refreshes enqueued',
            ['trigger', 'count'],
            [...Object.entries(o.warming.enqueued).map(([k, v]) => [k, String(v)]), ...(o.warming.dropped === null ? [] : [['warming dropped', String(o.warming.dropped)]])],
          )
        : null,
    ),
    h('p', { class: 'muted small' }, `This process's metrics, read ${new Date(o.at).toLocaleTimeString()}; refreshed every 5 s.`),
  );
}

/** A horizontal bar in steps of 5 %: a class per step keeps the page free of inline styles (CSP). */
function bar(name: string, value: number, total: number): VNode {
  const step = total > 0 ? Math.round((20 * value) / total) * 5 : 0;
  return h('span', { class: 'bar', role: 'img', 'aria-label': `${name}: ${percent(value, total)}` }, h('span', { class: `bar-fill bar-${name} w-${step}` }));
}

function tile(label: string, value: string, note: string): VNode {
  return h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value), h('div', { class: 'tile-note' }, note));
}

function table(caption: string, head: string[], rows: string[][]): VNode {
  return h(
    'div',
    { class: 'panel' },
    h(
      'table',
      null,
      h('caption', null, caption),
      h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.length === 0 ? h('tr', null, h('td', { colspan: head.length, class: 'muted' }, 'none yet')) : rows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))),
    ),
  );
}

async function showConfiguredCards(message?: { text: string; kind: 'info' | 'error' }): Promise<void> {
  const target = document.getElementById('configured-cards');
  if (!target) return;
  let cards: CardListingEntry[];
  try {
    cards = (await api.cards()).cards;
  } catch (err) {
    mount(target, h('p', { class: 'alert', role: 'alert' }, handleFailure(err)));
    return;
  }
  const save = async (event: Event, key: string): Promise<void> => {
    event.preventDefault();
    const input = document.getElementById(`ttl-${key}`) as HTMLInputElement;
    const seconds = Number(input.value);
    try {
      const entry = await api.setTtl(key, seconds);
      await showConfiguredCards({ text: `TTL override of ${key} set to ${entry.overrideTtlSeconds} s; it applies to cards loaded from now on.`, kind: 'info' });
    } catch (err) {
      await showConfiguredCards({ text: `Could not set the TTL of ${key}: ${handleFailure(err)}`, kind: 'error' });
    }
  };
  const clear = async (key: string): Promise<void> => {
    try {
      await api.clearTtl(key);
      await showConfiguredCards({ text: `TTL override of ${key} cleared.`, kind: 'info' });
    } catch (err) {
      await showConfiguredCards({ text: `Could not clear the TTL of ${key}: ${handleFailure(err)}`, kind: 'error' });
    }
  };
  mount(
    target,
    h(
      'div',
      { class: 'panel' },
      h(
        'table',
        null,
        h('caption', { class: 'visually-hidden' }, 'Configured cards and their TTL overrides'),
        h('thead', null, h('tr', null, ['card', 'upstream', 'scope', 'ttlSeconds', 'staleSeconds', 'TTL override'].map((c) => h('th', { scope: 'col' }, c)))),
        h(
          'tbody',
          null,
          cards.map((c) =>
            h(
              'tr',
              { 'data-card': c.key },
              h('th', { scope: 'row' }, c.key),
              h('td', null, c.upstream),
              h('td', null, c.scope),
              h('td', null, String(c.ttlSeconds)),
              h('td', null, String(c.staleSeconds)),
              h(
                'td',
                null,
                h(
                  'form',
                  { class: 'ttl-form', on: { submit: (e) => void save(e, c.key) } },
                  h('label', { for: `ttl-${c.key}`, class: 'visually-hidden' }, `TTL override of ${c.key} in seconds`),
                  h('input', { id: `ttl-${c.key}`, type: 'number', min: 1, step: 1, required: true, value: c.overrideTtlSeconds ?? '', placeholder: 'none' }),
                  h('button', { type: 'submit' }, 'Save'),
                  c.overrideTtlSeconds === null ? null : h('button', { type: 'button', class: 'quiet', on: { click: () => void clear(c.key) } }, 'Clear'),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
    h('p', { class: message?.kind === 'error' ? 'alert' : 'note', role: 'status' }, message?.text ?? ''),
  );
}

// ---------------------------------------------------------------------------------------------
// Customer

async function showCustomer(workspaceId: string, customerId: string): Promise<void> {
  document.title = `${customerId} · cardproxy console`;
  const target = view();
  try {
    const [{ customer, cards }, { events }] = await Promise.all([api.customerCards(workspaceId, customerId), api.events(customerId)]);
    if (location.hash !== customerHash(workspaceId, customerId)) return; // navigated away meanwhile
    const now = Date.now();
    mount(
      target,
      h(
        'section',
        { 'aria-labelledby': 'customer-title' },
        h('h1', { id: 'customer-title' }, `Customer ${customer.customerId}`),
        h('p', { class: 'muted' }, describeCustomer(customer)),
        h('div', { class: 'cards' }, cards.map((card) => cardView(customer, card, now))),
      ),
      h(
        'section',
        { 'aria-labelledby': 'timeline-title' },
        h('h2', { id: 'timeline-title' }, 'Event timeline'),
        timelineView(events.filter((e) => eventWorkspace(e) === null || eventWorkspace(e) === workspaceId)),
      ),
    );
  } catch (err) {
    mount(target, h('p', { class: 'alert', role: 'alert' }, `Could not load customer ${customerId}: ${handleFailure(err)}`));
  }
}

const cardId = (card: WireCard): string => `${card.key}${card.threadId === null ? '' : `@${card.threadId}`}`;

const STATE_LABEL: Record<WireCard['state'], string> = {
  fresh: 'fresh',
  stale: 'stale',
  error: 'error',
  missing: 'missing (placeholder)',
};

function cardView(customer: WireCustomer, card: WireCard, now: number): VNode {
  const id = cardId(card);
  const note = cardNotes.get(id);
  const time = (iso: string | null, relative = true): VNode | string =>
    iso === null ? '–' : h('time', { datetime: iso, title: iso }, `${formatDateTime(iso)}${relative ? ` (${relativeTime(iso, now)})` : ''}`);
  const failure = card.lastFailure;
  return h(
    'article',
    { class: `card card-${card.state}`, 'data-card': id, 'aria-labelledby': `card-${id}` },
    h(
      'header',
      { class: 'card-head' },
      h('h3', { id: `card-${id}` }, card.key, card.threadId === null ? null : h('span', { class: 'muted' }, ` · thread ${card.threadId}`)),
      h('span', { class: `state state-${card.state}`, 'data-state': card.state }, STATE_LABEL[card.state]),
    ),
    h('div', { class: 'plain-card', role: 'group', 'aria-label': `${card.key} as Plain shows it` }, renderComponents(card.components)),
    h(
      'dl',
      { class: 'meta' },
      h('dt', null, 'Fetched'),
      h('dd', { 'data-field': 'fetchedAt' }, time(card.fetchedAt)),
      h('dt', null, card.state === 'error' ? 'Retried after' : 'Expires'),
      h('dd', { 'data-field': 'expiresAt' }, time(card.expiresAt)),
      h('dt', null, 'TTL'),
      h('dd', { 'data-field': 'ttl' }, card.ttlSeconds === null ? '–' : `${card.ttlSeconds} s from ${card.ttlSource ?? 'an unrecorded source'}`),
      card.upstream ? [h('dt', null, 'Upstream'), h('dd', null, card.upstream)] : null,
      card.invalidatedAt ? [h('dt', null, 'Invalidated'), h('dd', null, time(card.invalidatedAt))] : null,
      h('dt', null, 'Last failure'),
      h(
        'dd',
        { 'data-field': 'lastFailure' },
        failure === null
          ? 'none'
          : [h('span', { class: `failure failure-${failure.errorKind}` }, failure.errorKind), ` ${failure.status === null ? '' : `HTTP ${failure.status} · `}${failure.detail} · `, time(failure.failedAt)],
      ),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', on: { click: () => void refreshCard(customer, card) } }, 'Refresh now'),
      h('button', { type: 'button', class: 'quiet', on: { click: () => void invalidateCard(customer, card) } }, 'Invalidate'),
    ),
    h('p', { class: note?.kind === 'error' ? 'alert' : 'note', role: 'status', 'data-note': id }, note?.text ?? ''),
  );
}

function setNote(card: WireCard, text: string, kind: 'info' | 'error' = 'info'): void {
  cardNotes.set(cardId(card), { text, kind });
  const el = document.querySelector(`[data-note="${CSS.escape(cardId(card))}"]`);
  if (el) {
    el.textContent = text;
    el.className = kind === 'error' ? 'alert' : 'note';
  }
}

/**
 * Refresh now: a card with data is invalidated with `refresh: true` (the admin API queues its
 * refresh); a card without data is warmed when this cardproxy has `POST /admin/warm`. Then the
 * card is watched until a new version or a new failure lands.
 */
async function refreshCard(customer: WireCustomer, card: WireCard): Promise<void> {
  setNote(card, 'Refreshing…');
  try {
    const invalidated = await invalidate(customer, card, true);
    if (invalidated === 0) {
      try {
        const { queued } = await api.warm({
          workspaceId: customer.workspaceId,
          customers: [{ id: customer.customerId, ...(customer.email ? { email: customer.email } : {}), ...(customer.externalId ? { externalId: customer.externalId } : {}) }],
          cardKeys: [card.key],
          ...(card.threadId === null ? {} : { threadId: card.threadId }),
        });
        if (queued === 0) {
          const negative = card.lastFailure?.errorKind === 'integration' && card.expiresAt !== null;
          setNote(
            card,
            negative
              ? `Not refreshed: after an integration error the upstream is not called again for this card until ${formatDateTime(card.expiresAt!)} (${relativeTime(card.expiresAt!, Date.now())}). A manual reload in Plain bypasses that.`
              : 'Nothing was queued: a refresh of this card is already under way, or warming is full.',
          );
          return;
        }
      } catch (err) {
        if (err instanceof AdminError && err.status === 404) {
          setNote(card, 'Nothing cached to refresh: the card loads on its next request.');
          return;
        }
        throw err;
      }
    }
  } catch (err) {
    setNote(card, `Refresh failed: ${handleFailure(err)}`, 'error');
    return;
  }
  const deadline = Date.now() + REFRESH_WATCH_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 400));
    const now = (await api.customerCards(customer.workspaceId, customer.customerId).catch(() => null))?.cards.find((c) => cardId(c) === cardId(card));
    if (!now) continue;
    if (now.fetchedAt !== card.fetchedAt && now.state === 'fresh') {
      setNote(card, `Refreshed: new version fetched ${relativeTime(now.fetchedAt!, Date.now())}.`);
      return void route();
    }
    if (now.lastFailure && now.lastFailure.failedAt !== card.lastFailure?.failedAt) {
      setNote(card, `The refresh failed (${now.lastFailure.errorKind}): ${now.lastFailure.detail}`, 'error');
      return void route();
    }
  }
  setNote(card, 'The refresh is queued but has not landed yet; reload this page to check.');
}

/** Marks one card of the customer stale (all its threads), optionally queueing its refresh. */
async function invalidate(customer: WireCustomer, card: WireCard, refresh: boolean): Promise<number> {
  const reason = refresh ? 'operator console: refresh now' : 'operator console: invalidate';
  const body = { customerId: customer.customerId, workspaceId: customer.workspaceId, cardKeys: [card.key], refresh, reason };
  return (await api.invalidate(body)).invalidated;
}

async function invalidateCard(customer: WireCustomer, card: WireCard): Promise<void> {
  try {
    const invalidated = await invalidate(customer, card, false);
    setNote(card, invalidated === 0 ? 'Nothing cached to invalidate.' : `Invalidated: served stale and refreshed on its next load (${invalidated} cached).`);
    await route();
  } catch (err) {
    setNote(card, `Invalidate failed: ${handleFailure(err)}`, 'error');
  }
}

function eventData(event: LoggedEvent): Record<string, unknown> {
  return typeof event.data === 'object' && event.data !== null ? (event.data as Record<string, unknown>) : {};
}

function eventWorkspace(event: LoggedEvent): string | null {
  const ws = eventData(event).workspaceId;
  return typeof ws === 'string' ? ws : null;
}

function timelineView(events: readonly LoggedEvent[]): VNode {
  if (events.length === 0) return h('p', { class: 'muted' }, 'No events for this customer in the log (retention: events.retentionSeconds).');
  return h(
    'ol',
    { class: 'timeline' },
    events.map((event) => {
      const d = eventData(event);
      const str = (name: string): string | null => (typeof d[name] === 'string' || typeof d[name] === 'number' ? String(d[name]) : null);
      const details = [
        str('cardKey'),
        str('threadId') ? `thread ${str('threadId')}` : null,
        str('trigger') ? `trigger ${str('trigger')}` : null,
        str('durationMs') ? `${str('durationMs')} ms` : null,
        str('ttlSeconds') ? `TTL ${str('ttlSeconds')} s${str('ttlSource') ? ` (${str('ttlSource')})` : ''}` : null,
        str('errorKind') ? `${str('errorKind')}${str('status') ? ` HTTP ${str('status')}` : ''}: ${str('detail') ?? ''}` : null,
        str('reason') ? `reason: ${str('reason')}` : null,
      ].filter(Boolean);
      return h(
        'li',
        { class: `event event-${event.type.replace(/[^a-z_]/g, '-')}` },
        h('time', { datetime: event.at, title: event.at }, formatDateTime(event.at)),
        h('span', { class: 'event-type' }, event.type),
        h('span', { class: 'event-details' }, details.join(' · ')),
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Copy buttons inside rendered cards copy their value, as in Plain.

document.addEventListener('click', (event) => {
  const button = (event.target as Element | null)?.closest?.('[data-copy]');
  if (button) void navigator.clipboard?.writeText(button.getAttribute('data-copy') ?? '').catch(() => {});
});

window.addEventListener('hashchange', () => void route());
if (session.token() === null) showLogin();
else showShell();
