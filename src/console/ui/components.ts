/**
 * Plain UI components as the console reads them from the admin API (research notes section 2):
 * each is an object with exactly one key naming its type. Every field is optional here because the
 * renderer must show whatever it is given (a deprecated alias, a type it does not know) rather
 * than fail; the server validated them against the full schema when they were loaded.
 */

export type TextSize = 'S' | 'M' | 'L';
export type TextColor = 'NORMAL' | 'MUTED' | 'SUCCESS' | 'WARNING' | 'ERROR';
export type BadgeColor = 'GREY' | 'GREEN' | 'YELLOW' | 'RED' | 'BLUE';
export type SpacingSize = 'XS' | 'S' | 'M' | 'L' | 'XL';

type Maybe<T> = T | null | undefined;

export interface UiComponent {
  componentText?: { text?: Maybe<string>; textSize?: Maybe<TextSize>; textColor?: Maybe<TextColor>; size?: Maybe<TextSize>; color?: Maybe<TextColor> };
  componentPlainText?: { plainText?: Maybe<string>; plainTextSize?: Maybe<TextSize>; plainTextColor?: Maybe<TextColor> };
  componentSpacer?: { spacerSize?: Maybe<SpacingSize>; size?: Maybe<SpacingSize> };
  componentDivider?: { dividerSpacingSize?: Maybe<SpacingSize>; spacingSize?: Maybe<SpacingSize> };
  componentLinkButton?: { linkButtonLabel?: Maybe<string>; linkButtonUrl?: Maybe<string>; label?: Maybe<string>; url?: Maybe<string> };
  componentWorkflowButton?: {
    workflowButtonLabel?: Maybe<string>;
    workflowButtonWorkflowIdentifier?: Maybe<{ workflowId?: Maybe<string>; workflowKey?: Maybe<string> }>;
  };
  componentBadge?: { badgeLabel?: Maybe<string>; badgeColor?: Maybe<BadgeColor> };
  componentCopyButton?: { copyButtonValue?: Maybe<string>; copyButtonTooltipLabel?: Maybe<string> };
  componentDateTime?: { dateTimeIso8601?: Maybe<string> };
  componentUser?: { userIdentifier?: Maybe<{ userId?: Maybe<string>; emailAddress?: Maybe<string> }> };
  componentRow?: { rowMainContent?: Maybe<readonly UiComponent[]>; rowAsideContent?: Maybe<readonly UiComponent[]> };
  componentContainer?: { containerContent?: Maybe<readonly UiComponent[]> };
}

/** The 12 component types, in the order of the research notes. */
export const COMPONENT_TYPES = [
  'componentText',
  'componentPlainText',
  'componentSpacer',
  'componentDivider',
  'componentLinkButton',
  'componentWorkflowButton',
  'componentBadge',
  'componentCopyButton',
  'componentDateTime',
  'componentUser',
  'componentRow',
  'componentContainer',
] as const satisfies ReadonlyArray<keyof UiComponent>;
