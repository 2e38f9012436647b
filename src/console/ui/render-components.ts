/**
 * Renders Plain UI components the way Plain shows them in a customer card: the 12 component types
 * of the research notes (section 2), with their sizes, colours and spacings as CSS classes that
 * `console.css` styles after Plain's cards. Pure: components in, virtual nodes out.
 */
import type { TextColor, TextSize, UiComponent } from './components.js';
import { externalLink, renderMarkdown } from './markdown.js';
import { h, type VNode } from './vnode.js';

/** How dates are shown; the page uses the viewer's locale and time zone, as Plain does. */
export interface RenderOptions {
  readonly locale?: string | undefined;
  readonly timeZone?: string | undefined;
}

/** Renders a card's components; `null` components (a card Plain does not show) give a note. */
export function renderComponents(components: readonly UiComponent[] | null, opts: RenderOptions = {}): VNode[] {
  if (components === null) return [h('p', { class: 'pc-none' }, 'No components: Plain does not show this card.')];
  return components.map((component) => renderComponent(component, opts));
}

/** Renders one component (and its children, for rows and containers). */
export function renderComponent(component: UiComponent, opts: RenderOptions = {}): VNode {
  const [type] = Object.keys(component);
  const c = component;
  if (c.componentText) {
    const { text, textSize, textColor, size, color } = c.componentText;
    return h('div', { class: textClasses('pc-text', textSize ?? size, textColor ?? color) }, ...renderMarkdown(text ?? ''));
  }
  if (c.componentPlainText) {
    const { plainText, plainTextSize, plainTextColor } = c.componentPlainText;
    return h('div', { class: textClasses('pc-plain-text', plainTextSize, plainTextColor) }, plainText ?? '');
  }
  if (c.componentSpacer) {
    return h('div', { class: `pc-spacer pc-space-${c.componentSpacer.spacerSize ?? c.componentSpacer.size ?? 'M'}`, 'aria-hidden': 'true' });
  }
  if (c.componentDivider) {
    return h('hr', { class: `pc-divider pc-space-${c.componentDivider.dividerSpacingSize ?? c.componentDivider.spacingSize ?? 'S'}` });
  }
  if (c.componentLinkButton) {
    const { linkButtonLabel, linkButtonUrl, label, url } = c.componentLinkButton;
    return externalLink(linkButtonUrl ?? url ?? '', 'pc-button pc-link-button', [linkButtonLabel ?? label ?? '', h('span', { class: 'pc-icon', 'aria-hidden': 'true' }, '↗')]);
  }
  if (c.componentWorkflowButton) {
    const { workflowButtonLabel, workflowButtonWorkflowIdentifier: id } = c.componentWorkflowButton;
    const workflow = id?.workflowId ?? id?.workflowKey ?? 'unknown';
    // A workflow runs in the context of a thread in Plain; the console only shows the button.
    return h('button', { type: 'button', class: 'pc-button pc-workflow-button', disabled: true, title: `Runs workflow ${workflow} in Plain` }, workflowButtonLabel ?? '');
  }
  if (c.componentBadge) {
    return h('span', { class: `pc-badge pc-badge-${c.componentBadge.badgeColor ?? 'GREY'}` }, c.componentBadge.badgeLabel ?? '');
  }
  if (c.componentCopyButton) {
    const value = c.componentCopyButton.copyButtonValue ?? '';
    const tooltip = c.componentCopyButton.copyButtonTooltipLabel ?? value; // Plain: the tooltip defaults to the value
    return h(
      'button',
      { type: 'button', class: 'pc-copy-button', 'data-copy': value, title: tooltip, 'aria-label': `Copy ${tooltip}` },
      h('span', { class: 'pc-copy-value' }, value),
      h('span', { class: 'pc-icon pc-copy-icon', 'aria-hidden': 'true' }),
    );
  }
  if (c.componentDateTime) {
    const iso = c.componentDateTime.dateTimeIso8601 ?? '';
    return h('time', { class: 'pc-date-time', datetime: iso }, formatDateTime(iso, opts));
  }
  if (c.componentUser) {
    const { userId, emailAddress } = c.componentUser.userIdentifier ?? {};
    const who = emailAddress ?? userId ?? 'unknown user';
    // Plain resolves the user to a name and avatar at read time; the console shows the identifier.
    return h(
      'span',
      { class: 'pc-user', title: emailAddress ? `Plain user ${emailAddress}` : `Plain user id ${userId ?? '?'}` },
      h('span', { class: 'pc-avatar', 'aria-hidden': 'true' }, who.slice(0, 1).toUpperCase()),
      h('span', { class: 'pc-user-name' }, who),
    );
  }
  if (c.componentRow) {
    const { rowMainContent, rowAsideContent } = c.componentRow;
    return h(
      'div',
      { class: 'pc-row' },
      h('div', { class: 'pc-row-main' }, (rowMainContent ?? []).map((child) => renderComponent(child, opts))),
      h('div', { class: 'pc-row-aside' }, (rowAsideContent ?? []).map((child) => renderComponent(child, opts))),
    );
  }
  if (c.componentContainer) {
    return h('div', { class: 'pc-container' }, (c.componentContainer.containerContent ?? []).map((child) => renderComponent(child, opts)));
  }
  return h('div', { class: 'pc-unknown' }, `Unknown component ${type ?? '(empty)'}`);
}

function textClasses(base: string, size: TextSize | null | undefined, color: TextColor | null | undefined): string {
  return `${base} pc-size-${size ?? 'M'} pc-color-${color ?? 'NORMAL'}`;
}

/** An ISO date-time in the viewer's locale and time zone; an unparsable one is shown as given. */
export function formatDateTime(iso: string, opts: RenderOptions = {}): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Intl.DateTimeFormat(opts.locale, { dateStyle: 'medium', timeStyle: 'short', timeZone: opts.timeZone }).format(ms);
}
