// Part of `npm run build`: copies what the compiled modules read at run time next to them: the
// console's HTML and CSS, and the Redis layer's Lua commands.
import { cpSync } from 'node:fs';

cpSync(new URL('../src/console/ui/static/', import.meta.url), new URL('../dist/console/ui/', import.meta.url), { recursive: true });
cpSync(new URL('../src/redis/commands/', import.meta.url), new URL('../dist/redis/commands/', import.meta.url), {
  recursive: true,
  filter: (source) => !source.endsWith('.ts'),
});
