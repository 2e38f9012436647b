/**
 * The markdown subset Plain renders in `componentText` ("bold, italic, and links"): `**bold**`
 * or `__bold__`, `*italic*` or `_italic_`, `[label](url)`. Everything else is text. Links open
 * in a new tab and only for http(s) and mailto URLs; any other link is shown as its label.
 */
import { h, type VNode } from './vnode.js';

const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/** The URL when it is absolute and its scheme is safe to open, else null. */
export function safeUrl(url: string): string | null {
  try {
    return SAFE_SCHEMES.has(new URL(url).protocol) ? url : null;
  } catch {
    return null;
  }
}

/** A link to `url` that opens in a new tab (Plain's behaviour), or the bare label for an unsafe URL. */
export function externalLink(url: string, className: string | null, children: Array<VNode | string>): VNode {
  const href = safeUrl(url);
  if (href === null) return h('span', { class: className, title: `link not opened: ${url}` }, ...children);
  return h('a', { class: className, href, target: '_blank', rel: 'noopener noreferrer' }, ...children);
}

// Emphasis needs text right inside its markers (`2 * 3 * 4` stays text), and `_` must not be
// inside a word (`snake_case_name` stays text), as in CommonMark.
const TOKEN = /\*\*(?!\s)(.+?)(?<!\s)\*\*|__(?!\s)(.+?)(?<!\s)__|\*(?!\s)(.+?)(?<!\s)\*|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)|\[([^\]]+)\]\(([^)\s]+)\)/s;

/** Parses the subset into nodes and strings. */
export function renderMarkdown(text: string): Array<VNode | string> {
  const out: Array<VNode | string> = [];
  let rest = text;
  for (;;) {
    const match = TOKEN.exec(rest);
    if (!match) break;
    if (match.index > 0) out.push(rest.slice(0, match.index));
    const [whole, bold1, bold2, italic1, italic2, label, url] = match;
    if (bold1 !== undefined || bold2 !== undefined) out.push(h('strong', null, ...renderMarkdown((bold1 ?? bold2)!)));
    else if (italic1 !== undefined || italic2 !== undefined) out.push(h('em', null, ...renderMarkdown((italic1 ?? italic2)!)));
    else out.push(externalLink(url!, null, renderMarkdown(label!)));
    rest = rest.slice(match.index + whole.length);
  }
  if (rest) out.push(rest);
  return out;
}
