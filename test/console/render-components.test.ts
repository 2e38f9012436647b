/**
 * The console's renderer of Plain UI components: one fixture per component type (all 12 of the
 * research notes, section 2), rendered to HTML exactly, plus the markdown subset and link safety.
 */
import { describe, expect, it } from 'vitest';
import { COMPONENT_TYPES, type UiComponent } from '../../src/console/ui/components.js';
import { renderMarkdown } from '../../src/console/ui/markdown.js';
import { renderComponent, renderComponents } from '../../src/console/ui/render-components.js';
import { h, textContent, toHtml } from '../../src/console/ui/vnode.js';
import { CardComponentsSchema } from '../../src/core/components.js';

const UTC = { locale: 'en-GB', timeZone: 'UTC' };
const html = (component: UiComponent): string => toHtml(renderComponent(component, UTC));

/** One fixture per type: the component and the HTML the console shows for it. */
const FIXTURES: Record<(typeof COMPONENT_TYPES)[number], [UiComponent, string]> = {
  componentText: [
    { componentText: { text: 'The **quick** brown fox _jumps_ over the [lazy link](https://plain.com)', textSize: 'L', textColor: 'MUTED' } },
    '<div class="pc-text pc-size-L pc-color-MUTED">The <strong>quick</strong> brown fox <em>jumps</em> over the <a href="https://plain.com" target="_blank" rel="noopener noreferrer">lazy link</a></div>',
  ],
  componentPlainText: [
    { componentPlainText: { plainText: 'No **markdown** <b>here</b>', plainTextColor: 'ERROR', plainTextSize: 'S' } },
    '<div class="pc-plain-text pc-size-S pc-color-ERROR">No **markdown** &lt;b&gt;here&lt;/b&gt;</div>',
  ],
  componentSpacer: [{ componentSpacer: { spacerSize: 'XL' } }, '<div class="pc-spacer pc-space-XL" aria-hidden="true"></div>'],
  componentDivider: [{ componentDivider: { dividerSpacingSize: 'XS' } }, '<hr class="pc-divider pc-space-XS">'],
  componentLinkButton: [
    { componentLinkButton: { linkButtonLabel: 'Open in CRM', linkButtonUrl: 'https://crm.example.com/a/1' } },
    '<a class="pc-button pc-link-button" href="https://crm.example.com/a/1" target="_blank" rel="noopener noreferrer">Open in CRM<span class="pc-icon" aria-hidden="true">↗</span></a>',
  ],
  componentWorkflowButton: [
    { componentWorkflowButton: { workflowButtonLabel: 'Run sync', workflowButtonWorkflowIdentifier: { workflowId: 'wf_01ABC123DEF456' } } },
    '<button type="button" class="pc-button pc-workflow-button" disabled title="Runs workflow wf_01ABC123DEF456 in Plain">Run sync</button>',
  ],
  componentBadge: [{ componentBadge: { badgeLabel: 'Premium plan', badgeColor: 'BLUE' } }, '<span class="pc-badge pc-badge-BLUE">Premium plan</span>'],
  componentCopyButton: [
    { componentCopyButton: { copyButtonTooltipLabel: 'Order ID', copyButtonValue: '2a8f2dae-3580-402b-aa0a-243efae55e39' } },
    '<button type="button" class="pc-copy-button" data-copy="2a8f2dae-3580-402b-aa0a-243efae55e39" title="Order ID" aria-label="Copy Order ID">' +
      '<span class="pc-copy-value">2a8f2dae-3580-402b-aa0a-243efae55e39</span><span class="pc-icon pc-copy-icon" aria-hidden="true"></span></button>',
  ],
  componentDateTime: [
    { componentDateTime: { dateTimeIso8601: '2026-05-11T09:30:00Z' } },
    '<time class="pc-date-time" datetime="2026-05-11T09:30:00Z">11 May 2026, 09:30</time>',
  ],
  componentUser: [
    { componentUser: { userIdentifier: { emailAddress: 'agent@example.com' } } },
    '<span class="pc-user" title="Plain user agent@example.com"><span class="pc-avatar" aria-hidden="true">A</span><span class="pc-user-name">agent@example.com</span></span>',
  ],
  componentRow: [
    {
      componentRow: {
        rowMainContent: [{ componentText: { text: 'Membership' } }],
        rowAsideContent: [{ componentBadge: { badgeLabel: 'Premium plan', badgeColor: 'BLUE' } }],
      },
    },
    '<div class="pc-row"><div class="pc-row-main"><div class="pc-text pc-size-M pc-color-NORMAL">Membership</div></div>' +
      '<div class="pc-row-aside"><span class="pc-badge pc-badge-BLUE">Premium plan</span></div></div>',
  ],
  componentContainer: [
    { componentContainer: { containerContent: [{ componentText: { text: 'Container content' } }, { componentDivider: {} }] } },
    '<div class="pc-container"><div class="pc-text pc-size-M pc-color-NORMAL">Container content</div><hr class="pc-divider pc-space-S"></div>',
  ],
};

describe('renderComponent: one fixture per component type', () => {
  it('covers the 12 types', () => {
    expect(Object.keys(FIXTURES)).toEqual([...COMPONENT_TYPES]);
    expect(COMPONENT_TYPES).toHaveLength(12);
  });

  it.each(Object.entries(FIXTURES))('%s', (_type, [component, expected]) => {
    // Every fixture is a component the server accepts from an upstream and would store.
    expect(CardComponentsSchema.safeParse([component]).success).toBe(true);
    expect(html(component)).toBe(expected);
  });
});

describe('renderComponent: defaults, aliases, odd input', () => {
  it('uses the documented defaults and deprecated aliases', () => {
    expect(html({ componentText: { text: 'x' } })).toBe('<div class="pc-text pc-size-M pc-color-NORMAL">x</div>');
    expect(html({ componentText: { text: 'x', size: 'S', color: 'SUCCESS' } })).toBe('<div class="pc-text pc-size-S pc-color-SUCCESS">x</div>');
    expect(html({ componentDivider: {} })).toBe('<hr class="pc-divider pc-space-S">');
    expect(html({ componentDivider: { spacingSize: 'L' } })).toBe('<hr class="pc-divider pc-space-L">');
    expect(html({ componentSpacer: { size: 'XS' } })).toBe('<div class="pc-spacer pc-space-XS" aria-hidden="true"></div>');
    expect(html({ componentBadge: { badgeLabel: 'Starter' } })).toBe('<span class="pc-badge pc-badge-GREY">Starter</span>');
    expect(html({ componentLinkButton: { label: 'Old', url: 'https://old.example.com' } })).toContain('href="https://old.example.com"');
    expect(html({ componentCopyButton: { copyButtonValue: 'v1' } })).toContain('title="v1" aria-label="Copy v1"'); // tooltip defaults to the value
    expect(html({ componentWorkflowButton: { workflowButtonLabel: 'Go', workflowButtonWorkflowIdentifier: { workflowKey: 'sync' } } })).toContain('Runs workflow sync in Plain');
    expect(html({ componentUser: { userIdentifier: { userId: 'u_1' } } })).toContain('<span class="pc-user-name">u_1</span>');
  });

  it('names a component type it does not know instead of failing', () => {
    expect(html({ componentChart: { points: [] } } as UiComponent)).toBe('<div class="pc-unknown">Unknown component componentChart</div>');
  });

  it('shows null components as the card Plain hides, and an unparsable date as given', () => {
    expect(renderComponents(null).map(textContent)).toEqual(['No components: Plain does not show this card.']);
    expect(html({ componentDateTime: { dateTimeIso8601: 'soon' } })).toBe('<time class="pc-date-time" datetime="soon">soon</time>');
  });

  it('renders a realistic card (Container > Row > leaf)', () => {
    const card: UiComponent[] = [
      { componentContainer: { containerContent: [{ componentRow: { rowMainContent: [{ componentText: { text: 'Plan', textColor: 'MUTED' } }], rowAsideContent: [{ componentBadge: { badgeLabel: 'Starter', badgeColor: 'YELLOW' } }] } }] } },
    ];
    expect(renderComponents(card, UTC).map(textContent)).toEqual(['PlanStarter']);
  });
});

describe('markdown and link safety', () => {
  it('parses bold, italic and links, nested, and leaves the rest as text', () => {
    expect(toHtml(h('p', null, renderMarkdown('**bold _and italic_** __b2__ *i2* snake_case_name 2 * 3 * 4')))).toBe(
      '<p><strong>bold <em>and italic</em></strong> <strong>b2</strong> <em>i2</em> snake_case_name 2 * 3 * 4</p>',
    );
  });

  it('never renders HTML from a card and never links to script URLs', () => {
    expect(html({ componentText: { text: '<img src=x onerror=alert(1)>' } })).toBe('<div class="pc-text pc-size-M pc-color-NORMAL">&lt;img src=x onerror=alert(1)&gt;</div>');
    expect(toHtml(h('p', null, renderMarkdown('[click](javascript:alert(1))')))).not.toContain('href');
    const button = html({ componentLinkButton: { linkButtonLabel: 'x', linkButtonUrl: 'data:text/html,hi' } });
    expect(button).toBe('<span class="pc-button pc-link-button" title="link not opened: data:text/html,hi">x<span class="pc-icon" aria-hidden="true">↗</span></span>');
    expect(toHtml(h('a', { title: '"><script>' }))).toBe('<a title="&quot;&gt;&lt;script&gt;"></a>');
  });
});
