/**
 * A tiny virtual node: the console's views are built as plain data (pure, testable in Node) and
 * turned into DOM by `dom.ts` with `createElement`/`textContent` only, so nothing a card or an
 * event contains is ever parsed as HTML.
 */

export type Child = VNode | string | null | undefined | false;

export interface VNode {
  readonly tag: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly (VNode | string)[];
  /** DOM event handlers (`click`, `submit`, …); ignored by `toHtml`. */
  readonly on?: Readonly<Handlers>;
}

type Handlers = Record<string, (event: Event) => void>;

/** Attributes: `false`, `null` and `undefined` leave the attribute out; `true` sets it empty. `on`: event handlers. */
export type Attrs = Record<string, string | number | boolean | null | undefined | Handlers>;

/** Builds a node; falsy children are dropped, nested arrays flattened. */
export function h(tag: string, attrs: Attrs | null = null, ...children: Array<Child | Child[]>): VNode {
  const clean: Record<string, string> = {};
  let on: Handlers | undefined;
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (typeof value === 'object' && value !== null) on = value;
    else if (value === true) clean[name] = '';
    else if (value !== false && value !== null && value !== undefined) clean[name] = String(value);
  }
  const kids = children.flat().filter((c): c is VNode | string => c !== null && c !== undefined && c !== false);
  return on ? { tag, attrs: clean, children: kids, on } : { tag, attrs: clean, children: kids };
}

const VOID = new Set(['br', 'hr', 'img', 'input', 'meta', 'link']);

const escapeText = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escapeAttr = (text: string): string => escapeText(text).replace(/"/g, '&quot;');

/** Serializes a node as HTML (for tests and snapshots; the page itself never uses HTML strings). */
export function toHtml(node: VNode | string): string {
  if (typeof node === 'string') return escapeText(node);
  const attrs = Object.entries(node.attrs)
    .map(([name, value]) => (value === '' ? ` ${name}` : ` ${name}="${escapeAttr(value)}"`))
    .join('');
  if (VOID.has(node.tag)) return `<${node.tag}${attrs}>`;
  return `<${node.tag}${attrs}>${node.children.map(toHtml).join('')}</${node.tag}>`;
}

/** The text a node shows (what a screen reader or `textContent` reads). */
export function textContent(node: VNode | string): string {
  return typeof node === 'string' ? node : node.children.map(textContent).join('');
}
