/**
 * A "typical" customer card of about 2 KB of JSON: rows of label/value pairs, badges, a divider
 * and a link button, like a billing or CRM card. Deterministic per (customer, key), so repeated
 * loads return the same bytes.
 */
import { createHash } from 'node:crypto';

const text = (value, extra = {}) => ({ componentText: { text: value, ...extra } });
const muted = (value) => text(value, { textColor: 'MUTED' });
const badge = (label, color) => ({ componentBadge: { badgeLabel: label, badgeColor: color } });
const row = (main, aside) => ({ componentRow: { rowMainContent: main, rowAsideContent: aside } });
const divider = () => ({ componentDivider: { dividerSpacingSize: 'S' } });
const linkButton = (label, url) => ({ componentLinkButton: { linkButtonLabel: label, linkButtonUrl: url } });
const copyButton = (value) => ({ componentCopyButton: { copyButtonValue: value, copyButtonTooltipLabel: 'Copy' } });

const LABELS = ['Plan', 'Status', 'MRR', 'Seats', 'Renews on', 'Account owner', 'Region', 'Last invoice', 'Open tickets', 'Health score', 'Contract', 'Payment method'];
const COLORS = ['GREEN', 'BLUE', 'YELLOW', 'GREY', 'RED'];

/** Target size of a card's JSON (`{key, timeToLiveSeconds, components}`), in bytes. */
export const TYPICAL_CARD_BYTES = 2048;

export function typicalComponents(customerId, cardKey, targetBytes = TYPICAL_CARD_BYTES) {
  const h = createHash('sha256').update(`${customerId}/${cardKey}`).digest();
  const account = `acct_${h.toString('hex').slice(0, 12)}`;
  const components = [
    row([muted('Account ID')], [text(account), copyButton(account)]),
    row([muted('Status')], [badge(h[0] % 5 === 0 ? 'Past due' : 'Active', COLORS[h[1] % COLORS.length])]),
  ];
  const tail = [divider(), linkButton('Open in billing', `https://billing.example.com/accounts/${account}/${cardKey}`)];
  const size = () => JSON.stringify({ key: cardKey, timeToLiveSeconds: null, components: [...components, ...tail] }).length;
  for (let i = 0; i < 64 && size() < targetBytes - 130; i++) {
    const label = LABELS[(h[2 + (i % 20)] + i) % LABELS.length];
    components.push(row([muted(label)], [text(`**${(h[i % 32] * 997 + i * 31) % 100_000}** units · ${label.toLowerCase()} ${i}`)]));
  }
  return [...components, ...tail];
}
