import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CardComponentSchema, CardComponentsSchema, type CardComponent } from '../../src/core/components.js';
import { describeZodIssues } from '../../src/core/describe-zod-issues.js';

/** Parses and returns the error lines (empty when valid). */
function problems(input: unknown): string[] {
  const result = CardComponentSchema.safeParse(input);
  return result.success ? [] : describeZodIssues(result.error);
}

const text = (t: string) => ({ componentText: { text: t } });

describe('CardComponentSchema: the 12 types (research-notes examples)', () => {
  it.each<[string, unknown]>([
    ['componentText', { componentText: { text: 'The **quick** brown fox _jumps_ over the [lazy link](https://plain.com)' } }],
    ['componentText (all fields)', { componentText: { text: 'Plan', textColor: 'MUTED', textSize: 'M' } }],
    ['componentPlainText', { componentPlainText: { plainText: 'No *markdown* here', plainTextSize: 'S', plainTextColor: 'ERROR' } }],
    ['componentBadge', { componentBadge: { badgeLabel: 'Premium plan', badgeColor: 'BLUE' } }],
    ['componentLinkButton', { componentLinkButton: { linkButtonLabel: 'Open in Stripe', linkButtonUrl: 'https://dashboard.stripe.com/c/1' } }],
    ['componentCopyButton', { componentCopyButton: { copyButtonTooltipLabel: 'Order ID', copyButtonValue: '2a8f2dae-3580-402b-aa0a-243efae55e39' } }],
    ['componentSpacer', { componentSpacer: { spacerSize: 'XS' } }],
    ['componentDivider', { componentDivider: { dividerSpacingSize: 'XS' } }],
    ['componentDivider (empty)', { componentDivider: {} }],
    [
      'componentRow',
      {
        componentRow: {
          rowMainContent: [{ componentText: { text: 'Membership' } }],
          rowAsideContent: [{ componentBadge: { badgeLabel: 'Premium plan', badgeColor: 'BLUE' } }],
        },
      },
    ],
    ['componentRow (empty aside)', { componentRow: { rowMainContent: [text('a')], rowAsideContent: [] } }],
    ['componentContainer', { componentContainer: { containerContent: [{ componentText: { text: 'Container content' } }] } }],
    [
      'componentContainer > componentRow',
      { componentContainer: { containerContent: [{ componentRow: { rowMainContent: [text('a')], rowAsideContent: [text('b')] } }] } },
    ],
    [
      'componentWorkflowButton',
      { componentWorkflowButton: { workflowButtonLabel: 'Run sync', workflowButtonWorkflowIdentifier: { workflowId: 'wf_01ABC123DEF456' } } },
    ],
    ['componentWorkflowButton (key)', { componentWorkflowButton: { workflowButtonLabel: 'Run', workflowButtonWorkflowIdentifier: { workflowKey: 'sync' } } }],
    ['componentDateTime', { componentDateTime: { dateTimeIso8601: '2026-05-11T09:30:00Z' } }],
    ['componentDateTime (offset)', { componentDateTime: { dateTimeIso8601: '2026-05-11T09:30:00.123+02:00' } }],
    ['componentUser (id)', { componentUser: { userIdentifier: { userId: 'u_01ABC' } } }],
    ['componentUser (email)', { componentUser: { userIdentifier: { emailAddress: 'agent@example.com' } } }],
  ])('accepts %s', (_name, input) => {
    expect(problems(input)).toEqual([]);
    expect(CardComponentSchema.parse(input)).toEqual(input);
  });

  it('accepts the realistic subscription-status card', () => {
    const components = [
      {
        componentRow: {
          rowMainContent: [{ componentText: { text: 'Plan', textColor: 'MUTED', textSize: 'M' } }],
          rowAsideContent: [{ componentBadge: { badgeLabel: 'Starter', badgeColor: 'YELLOW' } }],
        },
      },
      { componentSpacer: { spacerSize: 'M' } },
      {
        componentRow: {
          rowMainContent: [{ componentText: { text: 'Expires', textColor: 'MUTED', textSize: 'M' } }],
          rowAsideContent: [{ componentText: { text: '07 Jan, 2023', textColor: 'MUTED', textSize: 'M' } }],
        },
      },
    ];
    expect(CardComponentsSchema.parse(components)).toEqual(components);
  });
});

describe('CardComponentSchema: nulls and deprecated aliases', () => {
  it.each<[string, unknown]>([
    ['text (SDK style nulls)', { componentText: { text: 'x', textColor: null, textSize: null } }],
    ['text deprecated size/color', { componentText: { text: 'x', size: 'L', color: 'SUCCESS', textSize: null } }],
    ['plainText nulls', { componentPlainText: { plainText: 'x', plainTextSize: null, plainTextColor: null } }],
    ['badge null color', { componentBadge: { badgeLabel: 'x', badgeColor: null } }],
    ['copyButton null tooltip', { componentCopyButton: { copyButtonValue: 'v', copyButtonTooltipLabel: null } }],
    ['linkButton deprecated label/url', { componentLinkButton: { label: 'Go', url: 'https://example.com', linkButtonLabel: null, linkButtonUrl: null } }],
    ['spacer deprecated size', { componentSpacer: { size: 'XL', spacerSize: null } }],
    ['divider null spacing', { componentDivider: { dividerSpacingSize: null } }],
    ['divider deprecated spacingSize', { componentDivider: { spacingSize: 'L' } }],
    ['workflow identifier null key', { componentWorkflowButton: { workflowButtonLabel: 'Run', workflowButtonWorkflowIdentifier: { workflowId: 'wf_1', workflowKey: null } } }],
    ['user identifier null email', { componentUser: { userIdentifier: { userId: 'u_1', emailAddress: null } } }],
  ])('accepts %s', (_name, input) => {
    expect(problems(input)).toEqual([]);
    expect(CardComponentSchema.parse(input)).toEqual(input);
  });
});

describe('CardComponentSchema: unknown fields are dropped', () => {
  it('drops unknown fields inside a component', () => {
    const out = CardComponentSchema.parse({ componentText: { text: 'x', fontFamily: 'Comic Sans', onClick: 'alert(1)' } });
    expect(out).toEqual({ componentText: { text: 'x' } });
  });

  it('drops unknown fields at every nesting level', () => {
    const out = CardComponentSchema.parse({
      componentContainer: {
        containerContent: [
          {
            componentRow: {
              rowMainContent: [{ componentBadge: { badgeLabel: 'b', extra: 1 } }],
              rowAsideContent: [{ componentUser: { userIdentifier: { userId: 'u', nickname: 'x' } } }],
              rowStyle: 'fancy',
            },
          },
        ],
        containerBorder: true,
      },
    });
    expect(out).toEqual({
      componentContainer: {
        containerContent: [
          {
            componentRow: {
              rowMainContent: [{ componentBadge: { badgeLabel: 'b' } }],
              rowAsideContent: [{ componentUser: { userIdentifier: { userId: 'u' } } }],
            },
          },
        ],
      },
    });
  });

  it('drops unknown extra wrapper keys next to one known key', () => {
    const out = CardComponentSchema.parse({ componentText: { text: 'x' }, componentSparkle: { glitter: true } });
    expect(out).toEqual({ componentText: { text: 'x' } });
    expect(Object.keys(out)).toEqual(['componentText']);
  });

  it('infers a one-key-per-variant type', () => {
    const out: CardComponent = CardComponentSchema.parse(text('typed'));
    if ('componentText' in out) expect(out.componentText.text).toBe('typed');
    else expect.unreachable('expected componentText');
  });
});

describe('CardComponentSchema: rejections', () => {
  const long = (n: number) => 'x'.repeat(n);
  const row = (main: unknown[], aside: unknown[] = []) => ({ componentRow: { rowMainContent: main, rowAsideContent: aside } });
  const container = (content: unknown[]) => ({ componentContainer: { containerContent: content } });

  it.each<[string, unknown, string]>([
    ['container in container', container([container([text('a')])]), 'componentContainer.containerContent[0].componentContainer: a componentContainer cannot be nested inside a componentContainer'],
    ['row in row', row([row([text('a')])]), 'componentRow.rowMainContent[0].componentRow: a componentRow cannot be nested inside a componentRow'],
    ['container in row aside', row([text('a')], [container([text('b')])]), 'componentRow.rowAsideContent[0].componentContainer: a componentContainer cannot be placed inside a componentRow'],
    ['row in row inside container', container([row([text('a')], [row([text('b')])])]), 'componentContainer.containerContent[0].componentRow.rowAsideContent[0].componentRow:'],
    ['empty container', container([]), 'componentContainer.containerContent: '],
    ['empty row main content', row([]), 'componentRow.rowMainContent: '],
    ['missing rowAsideContent', { componentRow: { rowMainContent: [text('a')] } }, 'componentRow.rowAsideContent: '],
    ['bad text color', { componentText: { text: 'x', textColor: 'PINK' } }, 'componentText.textColor: '],
    ['bad badge color', { componentBadge: { badgeLabel: 'x', badgeColor: 'PURPLE' } }, 'componentBadge.badgeColor: '],
    ['bad spacer size', { componentSpacer: { spacerSize: 'XXL' } }, 'componentSpacer.spacerSize: '],
    ['bad deprecated divider spacing', { componentDivider: { spacingSize: 'huge' } }, 'componentDivider.spacingSize: '],
    ['text too long', { componentText: { text: long(10_001) } }, 'componentText.text: '],
    ['empty text', { componentText: { text: '' } }, 'componentText.text: '],
    ['missing text', { componentText: { textColor: 'MUTED' } }, 'componentText.text: '],
    ['plainText too long', { componentPlainText: { plainText: long(10_001) } }, 'componentPlainText.plainText: '],
    ['badge label too long', { componentBadge: { badgeLabel: long(501) } }, 'componentBadge.badgeLabel: '],
    ['copy value too long', { componentCopyButton: { copyButtonValue: long(1001) } }, 'componentCopyButton.copyButtonValue: '],
    ['copy tooltip too long', { componentCopyButton: { copyButtonValue: 'v', copyButtonTooltipLabel: long(501) } }, 'componentCopyButton.copyButtonTooltipLabel: '],
    ['workflow label too long', { componentWorkflowButton: { workflowButtonLabel: long(501), workflowButtonWorkflowIdentifier: { workflowId: 'w' } } }, 'componentWorkflowButton.workflowButtonLabel: '],
    ['invalid link URL', { componentLinkButton: { linkButtonLabel: 'Go', linkButtonUrl: 'not a url' } }, 'componentLinkButton.linkButtonUrl: must be a valid URL'],
    ['invalid deprecated url', { componentLinkButton: { label: 'Go', url: 'http://' } }, 'componentLinkButton.url: '],
    ['javascript: link', { componentLinkButton: { linkButtonLabel: 'Go', linkButtonUrl: 'javascript:alert(1)' } }, 'componentLinkButton.linkButtonUrl: URL scheme not allowed'],
    ['link without URL', { componentLinkButton: { linkButtonLabel: 'Go' } }, 'componentLinkButton.linkButtonUrl: required'],
    ['link without label', { componentLinkButton: { linkButtonUrl: 'https://example.com' } }, 'componentLinkButton.linkButtonLabel: required'],
    ['spacer without size', { componentSpacer: {} }, 'componentSpacer.spacerSize: required'],
    ['workflow without identifier', { componentWorkflowButton: { workflowButtonLabel: 'Run' } }, 'componentWorkflowButton.workflowButtonWorkflowIdentifier: '],
    ['workflow identifier empty', { componentWorkflowButton: { workflowButtonLabel: 'Run', workflowButtonWorkflowIdentifier: {} } }, 'componentWorkflowButton.workflowButtonWorkflowIdentifier: expected exactly one of workflowId, workflowKey'],
    ['user identifier with both', { componentUser: { userIdentifier: { userId: 'u', emailAddress: 'a@b.c' } } }, 'componentUser.userIdentifier: expected exactly one of userId, emailAddress, got userId and emailAddress'],
    ['non-string URL', { componentLinkButton: { linkButtonLabel: 'Go', linkButtonUrl: 5 } }, 'componentLinkButton.linkButtonUrl: Invalid input: expected string'],
    ['non-string date-time', { componentDateTime: { dateTimeIso8601: 1715419800 } }, 'componentDateTime.dateTimeIso8601: Invalid input: expected string'],
    ['bad date-time', { componentDateTime: { dateTimeIso8601: 'next tuesday' } }, 'componentDateTime.dateTimeIso8601: expected an ISO-8601 date-time'],
    ['two-key wrapper', { componentText: { text: 'x' }, componentBadge: { badgeLabel: 'b' } }, 'expected exactly one component key, found 2: componentText, componentBadge'],
    ['empty wrapper', {}, 'expected exactly one component key (one of componentText, '],
    ['only unknown wrapper keys', { componentSparkle: {} }, 'found only unknown key(s) componentSparkle'],
    ['null component body', { componentText: null }, 'componentText: '],
    ['not an object', 'componentText', 'expected object'],
    ['array', [text('a')], 'expected object'],
  ])('rejects %s', (_name, input, expected) => {
    const lines = problems(input);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).toContain(expected);
  });

  it('names the full path of a nested problem inside a list', () => {
    const result = z
      .object({ cards: z.array(z.object({ components: CardComponentsSchema })) })
      .safeParse({
        cards: [
          {
            components: [
              text('a'),
              text('b'),
              { componentRow: { rowMainContent: [{ componentText: { text: 'x', textSize: 'XL' } }], rowAsideContent: [] } },
            ],
          },
        ],
      });
    expect(result.success).toBe(false);
    expect(describeZodIssues(result.error!)).toEqual([
      expect.stringMatching(/^cards\[0\]\.components\[2\]\.componentRow\.rowMainContent\[0\]\.componentText\.textSize: /),
    ]);
  });
});
