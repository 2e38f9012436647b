/**
 * Zod schemas for Plain UI components, the contents of `cards[].components` (research-notes
 * section 2). Every upstream response is validated against them before it is cached or shown
 * to Plain, so a card we serve is never one Plain would reject, and unknown fields are dropped
 * instead of being passed on.
 *
 * Wire format: each component is an object with exactly one key naming its type
 * (`{"componentText": {...}}`), GraphQL's "input union" pattern. Instead of a `z.union` that
 * tries all members in turn, a wrapper is parsed by looking at its keys once and validating only
 * the member named there (see {@link componentWrapper}).
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Enums (schema.graphql)

const TextSize = z.enum(['S', 'M', 'L']);
const TextColor = z.enum(['NORMAL', 'MUTED', 'SUCCESS', 'WARNING', 'ERROR']);
const BadgeColor = z.enum(['GREY', 'GREEN', 'YELLOW', 'RED', 'BLUE']);
const SpacingSize = z.enum(['XS', 'S', 'M', 'L', 'XL']);

/** URL schemes that run code in the viewer's browser; never forwarded to an agent's screen. */
const SCRIPT_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:']);

/** The URL's scheme (`https:`), or undefined when it does not parse (reported by `z.url`). */
function urlScheme(url: string): string | undefined {
  try {
    return new URL(url).protocol.toLowerCase();
  } catch {
    return undefined;
  }
}

// The refinement also runs after z.url failed (format issues do not abort), so it must not throw.
const LinkUrl = z
  .url({ error: (issue) => (issue.code === 'invalid_format' ? 'must be a valid URL' : undefined) })
  .refine((url) => !SCRIPT_SCHEMES.has(urlScheme(url) ?? ''), {
    error: 'URL scheme not allowed (javascript:, data: and vbscript: links are refused)',
  });

const Label = z.string().max(500);

/** Adds a "required" issue at `field` unless it or its deprecated `alias` is present (non-null). */
function requireOneOf(
  value: Record<string, unknown>,
  ctx: z.RefinementCtx,
  field: string,
  alias: string,
): void {
  if (value[field] == null && value[alias] == null) {
    ctx.addIssue({
      code: 'custom',
      path: [field],
      message: `required (or its deprecated alias "${alias}")`,
    });
  }
}

/** Adds an issue unless exactly one of `fields` is present (non-null): a GraphQL one-of input. */
function requireExactlyOne(value: Record<string, unknown>, ctx: z.RefinementCtx, fields: readonly string[]): void {
  const present = fields.filter((f) => value[f] != null);
  if (present.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        present.length === 0
          ? `expected exactly one of ${fields.join(', ')}`
          : `expected exactly one of ${fields.join(', ')}, got ${present.join(' and ')}`,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Leaf components. Optional fields are `.nullish()` because the SDK sends `null` for them;
// z.object strips unknown fields.

const ComponentText = z.object({
  text: z.string().min(1).max(10_000),
  textSize: TextSize.nullish(),
  textColor: TextColor.nullish(),
  /** @deprecated alias of textSize */
  size: TextSize.nullish(),
  /** @deprecated alias of textColor */
  color: TextColor.nullish(),
});

const ComponentPlainText = z.object({
  plainText: z.string().min(1).max(10_000),
  plainTextSize: TextSize.nullish(),
  plainTextColor: TextColor.nullish(),
});

const ComponentBadge = z.object({
  badgeLabel: Label,
  badgeColor: BadgeColor.nullish(),
});

const ComponentLinkButton = z
  .object({
    linkButtonLabel: Label.nullish(),
    linkButtonUrl: LinkUrl.nullish(),
    /** @deprecated alias of linkButtonLabel */
    label: Label.nullish(),
    /** @deprecated alias of linkButtonUrl */
    url: LinkUrl.nullish(),
  })
  .superRefine((value, ctx) => {
    requireOneOf(value, ctx, 'linkButtonLabel', 'label');
    requireOneOf(value, ctx, 'linkButtonUrl', 'url');
  });

const ComponentCopyButton = z.object({
  copyButtonValue: z.string().max(1000),
  copyButtonTooltipLabel: Label.nullish(),
});

const ComponentSpacer = z
  .object({
    spacerSize: SpacingSize.nullish(),
    /** @deprecated alias of spacerSize */
    size: SpacingSize.nullish(),
  })
  .superRefine((value, ctx) => requireOneOf(value, ctx, 'spacerSize', 'size'));

const ComponentDivider = z.object({
  dividerSpacingSize: SpacingSize.nullish(),
  /** @deprecated alias of dividerSpacingSize */
  spacingSize: SpacingSize.nullish(),
});

const ComponentWorkflowButton = z.object({
  workflowButtonLabel: Label,
  workflowButtonWorkflowIdentifier: z
    .object({
      workflowId: z.string().min(1).nullish(),
      workflowKey: z.string().min(1).nullish(),
    })
    .superRefine((value, ctx) => requireExactlyOne(value, ctx, ['workflowId', 'workflowKey'])),
});

const ComponentDateTime = z.object({
  dateTimeIso8601: z.iso.datetime({
    offset: true,
    local: true,
    error: (issue) =>
      issue.code === 'invalid_format' ? 'expected an ISO-8601 date-time such as 2026-05-11T09:30:00Z' : undefined,
  }),
});

const ComponentUser = z.object({
  userIdentifier: z
    .object({
      userId: z.string().min(1).nullish(),
      emailAddress: z.string().min(1).nullish(),
    })
    .superRefine((value, ctx) => requireExactlyOne(value, ctx, ['userId', 'emailAddress'])),
});

const LEAVES = {
  componentText: ComponentText,
  componentPlainText: ComponentPlainText,
  componentBadge: ComponentBadge,
  componentLinkButton: ComponentLinkButton,
  componentCopyButton: ComponentCopyButton,
  componentSpacer: ComponentSpacer,
  componentDivider: ComponentDivider,
  componentWorkflowButton: ComponentWorkflowButton,
  componentDateTime: ComponentDateTime,
  componentUser: ComponentUser,
} as const;

// ---------------------------------------------------------------------------------------------
// Wrapper: `{ <componentType>: {...} }` with exactly one known key.

type Members = Record<string, z.ZodType>;

/** `{componentText: A} | {componentBadge: B} | ...`: exactly one key per variant. */
type OneKeyOf<M extends Members> = { [K in keyof M]: { [P in K]: z.output<M[K]> } }[keyof M];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Builds the schema of one component wrapper whose allowed types are `members`.
 *
 * A preprocess step inspects the wrapper's own keys once: a key naming a component type that is
 * not allowed at this level (`forbidden`, with the reason) is an error at that key; zero or
 * several allowed keys is an error at the wrapper; other keys are ignored. The object schema
 * behind it then validates only the member that is present (absent optional keys cost one
 * `undefined` check each) and strips the unknown wrapper keys. Cost is linear in the input.
 */
function componentWrapper<M extends Members>(
  members: M,
  forbidden: Readonly<Record<string, string>>,
): z.ZodType<OneKeyOf<M>, unknown> {
  const names = Object.keys(members);
  const allowed = new Set(names);
  const shape: Record<string, z.ZodType> = {};
  for (const name of names) shape[name] = members[name]!.optional();
  const wrapper = z.object(shape);

  const checked = z.preprocess((input, ctx) => {
    if (!isPlainObject(input)) return input; // the object schema reports "expected object"
    let found: string[] | undefined;
    let unknown: string[] | undefined;
    for (const key of Object.keys(input)) {
      if (allowed.has(key)) {
        (found ??= []).push(key);
      } else if (Object.hasOwn(forbidden, key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: forbidden[key]!, input: input[key] });
        return input;
      } else {
        (unknown ??= []).push(key);
      }
    }
    if (found === undefined) {
      const seen = unknown === undefined ? 'none' : `only unknown key(s) ${unknown.join(', ')}`;
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one component key (one of ${names.join(', ')}), found ${seen}`,
        input,
      });
    } else if (found.length > 1) {
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one component key, found ${found.length}: ${found.join(', ')}`,
        input,
      });
    }
    return input;
  }, wrapper);

  return checked as unknown as z.ZodType<OneKeyOf<M>, unknown>;
}

/** Inside a row (main and aside): everything except Row and Container. */
const RowContent = componentWrapper(LEAVES, {
  componentRow: 'a componentRow cannot be nested inside a componentRow',
  componentContainer: 'a componentContainer cannot be placed inside a componentRow',
});

const ComponentRow = z.object({
  rowMainContent: z.array(RowContent).min(1),
  rowAsideContent: z.array(RowContent),
});

/** Inside a container: everything except Container (a Row is allowed). */
const ContainerContent = componentWrapper(
  { ...LEAVES, componentRow: ComponentRow },
  { componentContainer: 'a componentContainer cannot be nested inside a componentContainer' },
);

const ComponentContainer = z.object({
  containerContent: z.array(ContainerContent).min(1),
});

/**
 * One top-level component of a customer card: any of the 12 Plain UI component types, as an
 * object with exactly one key naming the type. Unknown fields (and unknown wrapper keys) are
 * dropped from the output; nesting follows Plain's schema (`Container > Row > leaf` at most).
 */
export const CardComponentSchema = componentWrapper(
  { ...LEAVES, componentRow: ComponentRow, componentContainer: ComponentContainer },
  {},
);

/**
 * The `components` array of one card (without the `null` Plain also allows). Validates what an
 * upstream returned before cardproxy caches or serves it.
 */
export const CardComponentsSchema = z.array(CardComponentSchema);

/** A validated, unknown-field-free top-level card component, as served to Plain. */
export type CardComponent = z.output<typeof CardComponentSchema>;
