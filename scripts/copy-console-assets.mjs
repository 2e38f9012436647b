// Part of `npm run build`: copies the console's HTML and CSS next to its compiled modules.
import { cpSync } from 'node:fs';

cpSync(new URL('../src/console/ui/static/', import.meta.url), new URL('../dist/console/ui/', import.meta.url), { recursive: true });
