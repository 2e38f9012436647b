/**
 * The operator console (SPEC section 15): `GET /console` and its static modules and stylesheet
 * under `/console/`, served from `dist/console/ui` (built by `npm run build`). Registered only when
 * `admin.token` is set, so without one `/console` answers 404 like the admin API. The files hold
 * no token: the operator types it into the page, which keeps it in `sessionStorage` and sends it
 * to `/admin` only. A strict Content-Security-Policy allows nothing but this origin's own files.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { sendError } from '../errors.js';

/** Where `npm run build` puts the console, from this module in `src/http/routes` or `dist/http/routes`. */
export const CONSOLE_ASSETS_DIR = fileURLToPath(new URL('../../../dist/console/ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Only flat file names with a known extension: no directories, so no path can escape the folder. */
const ASSET_NAME = /^[a-z0-9-]+\.(html|js|css|map)$|^[a-z0-9-]+\.js\.map$/;

export interface ConsoleRouteOptions {
  /** The built console; defaults to {@link CONSOLE_ASSETS_DIR}. */
  readonly assetsDir?: string;
}

export async function consoleRoutes(app: FastifyInstance, opts: ConsoleRouteOptions): Promise<void> {
  const dir = opts.assetsDir ?? CONSOLE_ASSETS_DIR;
  const send = async (reply: FastifyReply, name: string): Promise<FastifyReply> => {
    let body: Buffer;
    try {
      body = await readFile(join(dir, name));
    } catch {
      return name === 'index.html'
        ? sendError(reply, 503, 'console_not_built', 'the console is not built: run npm run build')
        : sendError(reply, 404, 'not_found', `no console file ${name}`);
    }
    const ext = name.slice(name.lastIndexOf('.'));
    return reply
      .header('content-type', TYPES[ext] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(body);
  };
  app.get('/console', (_request, reply) => send(reply, 'index.html'));
  app.get('/console/', (_request, reply) => send(reply, 'index.html'));
  app.get('/console/:file', (request, reply) => {
    const file = (request.params as { file: string }).file;
    if (!ASSET_NAME.test(file)) return sendError(reply, 404, 'not_found', `no console file ${file}`);
    return send(reply, file);
  });
}
