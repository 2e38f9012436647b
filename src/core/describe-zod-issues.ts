import type { z } from 'zod';

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * Renders a zod issue path the way a JavaScript reader writes it: `cards[0].components[2].text`.
 * Keys that are not plain identifiers are quoted (`headers["x-api-key"]`) so a path is never
 * ambiguous; the empty path renders as the empty string.
 */
export function formatZodPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && IDENTIFIER.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

/**
 * One human-readable line per issue of a zod error, `path.to[0].field: message` (just the message
 * for an issue on the root value). Shared by the config loader, HTTP `400` answers and upstream
 * response classification so every surface names the offending field the same way.
 * `pathPrefix` is prepended to every path, for a value that was validated out of its context
 * (e.g. `['cards', 3]` for one card of an upstream response).
 */
export function describeZodIssues(error: z.ZodError, pathPrefix: readonly PropertyKey[] = []): string[] {
  return error.issues.map((issue) => {
    const path = formatZodPath([...pathPrefix, ...issue.path]);
    return path === '' ? issue.message : `${path}: ${issue.message}`;
  });
}
