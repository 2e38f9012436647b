/** Turns virtual nodes into DOM: elements, attributes and text nodes only, never HTML strings. */
import type { VNode } from './vnode.js';

export function toDom(node: VNode | string): Node {
  if (typeof node === 'string') return document.createTextNode(node);
  const el = document.createElement(node.tag);
  for (const [name, value] of Object.entries(node.attrs)) el.setAttribute(name, value);
  for (const [type, handler] of Object.entries(node.on ?? {})) el.addEventListener(type, handler);
  for (const child of node.children) el.appendChild(toDom(child));
  return el;
}

/** Replaces the contents of `parent` with `nodes`. */
export function mount(parent: Element, ...nodes: Array<VNode | string>): void {
  parent.replaceChildren(...nodes.map(toDom));
}
