/**
 * A simulated slow legacy card API: the kind of system cardproxy is put in front of.
 *
 * It speaks Plain's customer-card protocol as a server (`POST /cards` with
 * `{cardKeys, customer, thread, tenant}` → `{cards: [{key, timeToLiveSeconds, components}]}`),
 * takes a random time between `minLatencyMs` and `maxLatencyMs` to answer, and fails a share of
 * its requests with `503`, the way an overloaded billing system or SOAP bridge does. Only
 * `node:http`, so the demo and docker-compose need nothing but Node.
 *
 * Card content is derived from a hash of `customer.id`, so repeated loads of one customer show
 * the same plan, invoices and usage; only the "Generated at" line changes, which makes a refresh
 * visible in Plain (or in curl output).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** Options of {@link startLegacyApi}; every field has a demo-friendly default. */
export interface LegacyApiOptions {
  /** Port to listen on; `0` (the default) picks a free one. */
  port?: number;
  /** Interface to bind; default `127.0.0.1`. */
  host?: string;
  /** Shortest simulated processing time of a `/cards` request, in ms (default 2000). */
  minLatencyMs?: number;
  /** Longest simulated processing time, in ms (default 6000). */
  maxLatencyMs?: number;
  /** Share of `/cards` requests answered `503` after their latency, 0..1 (default 0.1). */
  failureRate?: number;
  /** Receives one line per request; default: silent. */
  log?: (line: string) => void;
}

/** A running legacy API. */
export interface LegacyApi {
  /** The card endpoint to configure as an upstream URL, e.g. `http://127.0.0.1:8090/cards`. */
  url: string;
  port: number;
  /** Stops listening, cancels requests still waiting out their latency and drops connections. */
  close(): Promise<void>;
  /** `/cards` requests received so far, and how many of them were answered `503` on purpose. */
  stats(): { requests: number; failures: number };
}

/** The card keys this legacy API knows; any other requested key is left out of the answer. */
export const LEGACY_CARD_KEYS = ['subscription-details', 'latest-invoices', 'usage', 'customer-details'] as const;

type Component = Record<string, unknown>;

interface LegacyCard {
  key: string;
  timeToLiveSeconds: number | null;
  components: Component[] | null;
}

interface CardRequest {
  cardKeys: string[];
  customer: { id: string; email: string | null; externalId: string | null };
}

const MAX_BODY_BYTES = 1024 * 1024;

/** Starts the simulated legacy card API and resolves once it listens. */
export async function startLegacyApi(opts: LegacyApiOptions = {}): Promise<LegacyApi> {
  const minLatencyMs = opts.minLatencyMs ?? 2000;
  const maxLatencyMs = Math.max(minLatencyMs, opts.maxLatencyMs ?? 6000);
  const failureRate = Math.min(1, Math.max(0, opts.failureRate ?? 0.1));
  const log = opts.log ?? (() => {});
  const host = opts.host ?? '127.0.0.1';

  let requests = 0;
  let failures = 0;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();

  /** Waits `ms`, or less when the API is closed or the client goes away (then resolves `false`). */
  function wait(ms: number, res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      const onClose = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        timers.delete(timer);
        res.off('close', onClose);
        resolve(true);
      }, ms);
      timers.add(timer);
      res.once('close', onClose);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const path = (req.url ?? '/').split('?')[0];
    const finish = (status: number, body: unknown, note: string): void => {
      send(res, status, body);
      log(`${new Date().toISOString()} ${req.method} ${path} -> ${status} in ${Date.now() - started}ms${note ? ` ${note}` : ''}`);
    };

    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, { ok: true });
      return;
    }
    if (path !== '/cards') {
      finish(404, { error: 'not_found', message: `no route ${req.method} ${path}; cards are served at POST /cards` }, '');
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      finish(405, { error: 'method_not_allowed', message: 'use POST /cards' }, '');
      return;
    }

    const raw = await readBody(req);
    if (raw === 'too-large') {
      finish(413, { error: 'payload_too_large', message: `body over ${MAX_BODY_BYTES} bytes` }, '');
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      finish(400, { error: 'bad_json', message: 'body is not valid JSON' }, '');
      return;
    }
    const request = asCardRequest(parsed);
    if (typeof request === 'string') {
      finish(400, { error: 'bad_request', message: request }, '');
      return;
    }

    requests += 1;
    const latency = Math.round(minLatencyMs + Math.random() * (maxLatencyMs - minLatencyMs));
    const note = `customer=${request.customer.id} keys=${request.cardKeys.join(',')}`;
    if (!(await wait(latency, res))) {
      log(`${new Date().toISOString()} POST /cards aborted after ${Date.now() - started}ms ${note}`);
      return;
    }
    if (Math.random() < failureRate) {
      failures += 1;
      finish(503, { error: 'unavailable', message: 'legacy backend is overloaded, try again' }, `${note} (simulated failure)`);
      return;
    }
    const now = new Date();
    const cards: LegacyCard[] = [];
    for (const key of request.cardKeys) {
      const card = buildCard(key, request.customer, now);
      if (card) cards.push(card);
    }
    finish(200, { cards }, note);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      if (res.destroyed || res.headersSent) {
        log(`${new Date().toISOString()} ${req.method} ${req.url} aborted: ${message}`);
        return;
      }
      log(`${new Date().toISOString()} ${req.method} ${req.url} -> 500 ${message}`);
      send(res, 500, { error: 'internal', message: 'legacy API failed' });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/cards`,
    port,
    stats: () => ({ requests, failures }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? 'too-large' : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client went away before sending the whole body'));
    });
  });
}

/** Checks the request body; returns the problem as text when it is not a card request. */
function asCardRequest(value: unknown): CardRequest | string {
  if (!isObject(value)) return 'body must be a JSON object';
  const { cardKeys, customer } = value;
  if (!Array.isArray(cardKeys) || !cardKeys.every((k): k is string => typeof k === 'string')) {
    return 'cardKeys must be an array of strings';
  }
  if (!isObject(customer) || typeof customer.id !== 'string' || customer.id === '') {
    return 'customer.id must be a non-empty string';
  }
  return {
    cardKeys,
    customer: {
      id: customer.id,
      email: typeof customer.email === 'string' ? customer.email : null,
      externalId: typeof customer.externalId === 'string' ? customer.externalId : null,
    },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Deterministic fake data

/** A stable unsigned 32-bit number for (customer, purpose). */
function hashOf(customerId: string, salt: string): number {
  return createHash('sha256').update(`${salt}:${customerId}`).digest().readUInt32BE(0);
}

const PLANS = [
  { name: 'Starter', color: 'YELLOW', base: 49, perSeat: 9, seats: 5, apiCalls: 100_000 },
  { name: 'Growth', color: 'BLUE', base: 299, perSeat: 19, seats: 25, apiCalls: 1_000_000 },
  { name: 'Business', color: 'GREEN', base: 1_200, perSeat: 29, seats: 100, apiCalls: 10_000_000 },
  { name: 'Enterprise', color: 'GREEN', base: 4_800, perSeat: 39, seats: 500, apiCalls: 100_000_000 },
] as const;

const STATUSES = [
  { label: 'Active', color: 'GREEN' },
  { label: 'Active', color: 'GREEN' },
  { label: 'Active', color: 'GREEN' },
  { label: 'Active', color: 'GREEN' },
  { label: 'Active', color: 'GREEN' },
  { label: 'Active', color: 'GREEN' },
  { label: 'Trialing', color: 'BLUE' },
  { label: 'Trialing', color: 'BLUE' },
  { label: 'Past due', color: 'RED' },
  { label: 'Cancelled', color: 'GREY' },
] as const;

const OWNERS = ['Priya Raman', 'Jonas Weber', 'Maria Lopez', 'Sam Okafor', 'Hannah Kim', 'Luca Rossi'] as const;

const number = new Intl.NumberFormat('en-US');
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function formatDate(d: Date): string {
  return `${String(d.getUTCDate()).padStart(2, '0')} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

function pick<T>(list: readonly T[], h: number): T {
  return list[h % list.length] as T;
}

/** Everything the cards show about one customer, derived from its id. */
function profileOf(customerId: string, now: Date) {
  const plan = pick(PLANS, hashOf(customerId, 'plan'));
  const status = pick(STATUSES, hashOf(customerId, 'status'));
  const seatsUsed = 1 + (hashOf(customerId, 'seats') % plan.seats);
  const mrr = plan.base + seatsUsed * plan.perSeat;
  // Billing happens on the same day each month (1..28): renewal is the next such day after
  // today, invoices are the last three such days up to today.
  const billingDay = 1 + (hashOf(customerId, 'billing-day') % 28);
  const thisMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), billingDay);
  const passed = thisMonth <= now.getTime();
  const monthOffset = (n: number): Date =>
    new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + n + (passed ? 0 : -1), billingDay));
  const apiCallsUsed = Math.round(plan.apiCalls * ((hashOf(customerId, 'api-calls') % 1100) / 1000));
  const accountId = `acct_${createHash('sha256').update(`account:${customerId}`).digest('hex').slice(0, 12)}`;
  const signup = new Date(Date.UTC(2018, 0, 1) + (hashOf(customerId, 'signup') % 2500) * 86_400_000);
  return {
    plan,
    status,
    seatsUsed,
    mrr,
    renewal: monthOffset(1),
    invoiceDates: [monthOffset(0), monthOffset(-1), monthOffset(-2)],
    apiCallsUsed,
    accountId,
    signup,
    owner: pick(OWNERS, hashOf(customerId, 'owner')),
  };
}

const text = (value: string, extra: Component = {}): Component => ({ componentText: { text: value, ...extra } });
/** For values taken from the request (emails, ids): shown as is, never read as markdown. */
const plain = (value: string): Component => ({ componentPlainText: { plainText: value } });
const muted = (value: string): Component => text(value, { textColor: 'MUTED' });
const badge = (label: string, color: string): Component => ({ componentBadge: { badgeLabel: label, badgeColor: color } });
const row = (main: Component[], aside: Component[]): Component => ({ componentRow: { rowMainContent: main, rowAsideContent: aside } });
const divider = (size = 'S'): Component => ({ componentDivider: { dividerSpacingSize: size } });
const linkButton = (label: string, url: string): Component => ({ componentLinkButton: { linkButtonLabel: label, linkButtonUrl: url } });
const copyButton = (value: string, tooltip: string): Component => ({
  componentCopyButton: { copyButtonValue: value, copyButtonTooltipLabel: tooltip },
});
const generatedAt = (now: Date, system: string): Component =>
  text(`Generated at ${now.toISOString()} by ${system}`, { textSize: 'S', textColor: 'MUTED' });

/**
 * Builds the card `key` for `customer`, or `undefined` for a key this API does not know.
 * `timeToLiveSeconds` is `null` so the TTLs configured in cardproxy (or Plain) apply.
 */
export function buildCard(
  key: string,
  customer: { id: string; email?: string | null; externalId?: string | null },
  now: Date = new Date(),
): LegacyCard | undefined {
  const p = profileOf(customer.id, now);
  switch (key) {
    case 'subscription-details': {
      const ends = p.status.label === 'Cancelled';
      return {
        key,
        timeToLiveSeconds: null,
        components: [
          row([muted('Plan')], [badge(p.plan.name, p.plan.color)]),
          row([muted('Status')], [badge(p.status.label, p.status.color)]),
          row([muted(ends ? 'Ends on' : p.status.label === 'Trialing' ? 'Trial ends' : 'Renews on')], [text(formatDate(p.renewal))]),
          row([muted('MRR')], [text(`**${money.format(p.mrr)}**`)]),
          divider(),
          generatedAt(now, 'legacy billing'),
        ],
      };
    }
    case 'latest-invoices': {
      const components: Component[] = [];
      p.invoiceDates.forEach((date, i) => {
        const id = `INV-${date.getUTCFullYear()}${String(date.getUTCMonth() + 1).padStart(2, '0')}-${String(hashOf(customer.id, 'invoice') % 10_000).padStart(4, '0')}`;
        const amount = p.mrr + (hashOf(customer.id, `overage-${id}`) % 40) * 5;
        const state =
          i === 0 && p.status.label === 'Past due'
            ? badge('Overdue', 'RED')
            : i === 0 && hashOf(customer.id, 'open-invoice') % 3 === 0
              ? badge('Open', 'YELLOW')
              : badge('Paid', 'GREEN');
        components.push(
          row([text(`**${id}**`), muted(`${formatDate(date)} · ${money.format(amount)}`)], [state, linkButton('View', `https://billing.example.com/invoices/${id}`)]),
        );
        components.push(divider('XS'));
      });
      components.push(generatedAt(now, 'legacy billing'));
      return { key, timeToLiveSeconds: null, components };
    }
    case 'usage': {
      const share = p.apiCallsUsed / p.plan.apiCalls;
      const pct = Math.round(share * 100);
      const color = share >= 0.9 ? 'RED' : share >= 0.75 ? 'YELLOW' : 'GREEN';
      return {
        key,
        timeToLiveSeconds: null,
        components: [
          row([muted('Seats')], [text(`${p.seatsUsed} / ${p.plan.seats}`)]),
          row([muted('API calls this month')], [text(`${number.format(p.apiCallsUsed)} / ${number.format(p.plan.apiCalls)}`)]),
          row([muted('Quota used')], [badge(`${pct}%`, color)]),
          divider(),
          generatedAt(now, 'legacy usage metering'),
        ],
      };
    }
    case 'customer-details': {
      const components: Component[] = [
        row([muted('Account ID')], [text(p.accountId), copyButton(p.accountId, 'Copy account ID')]),
        row([muted('Signed up')], [text(formatDate(p.signup))]),
        row([muted('Account owner')], [text(p.owner)]),
      ];
      const email = customer.email?.slice(0, 1000);
      if (email) components.push(row([muted('Email')], [plain(email), copyButton(email, 'Copy email')]));
      const externalId = customer.externalId?.slice(0, 1000);
      if (externalId) components.push(row([muted('External ID')], [plain(externalId)]));
      components.push(linkButton('Open in CRM', `https://crm.example.com/accounts/${p.accountId}`));
      components.push(divider());
      components.push(generatedAt(now, 'legacy CRM'));
      return { key, timeToLiveSeconds: null, components };
    }
    default:
      return undefined;
  }
}
