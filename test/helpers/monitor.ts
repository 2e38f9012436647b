/**
 * Every command a Redis runs, watched with MONITOR over a plain socket (ioredis' monitor mode can
 * trip on a busy server), parsed into who ran it (`lua` for a script's calls) and its arguments.
 * MONITOR sees every client of the server: use it on a Redis of the test's own.
 */
import { connect } from 'node:net';

/** One line of MONITOR output: who ran it (`lua` inside a script) and the arguments. */
export interface Monitored {
  readonly client: string;
  readonly args: string[];
}

/** MONITOR's quoting: `"..."` with \\, \", \n, \r, \t, \a, \b and \xhh escapes. */
function unquote(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) =>
    e.startsWith('x') && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : ({ n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' } as Record<string, string>)[e] ?? e,
  );
}

export async function monitor(port: number): Promise<{ lines: Monitored[]; stop: () => void }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const lines: Monitored[] = [];
  let pending = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\r\n');
    pending = parts.pop()!;
    for (const line of parts) {
      // +<time> [<db> <client>] "cmd" "arg" ...
      const head = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] /.exec(line);
      if (!head) continue;
      const args = [...line.slice(head[0].length).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => Buffer.from(unquote(m[1]!), 'latin1').toString('utf8'));
      lines.push({ client: head[1]!, args });
    }
  });
  socket.write('MONITOR\r\n');
  await new Promise((r) => setTimeout(r, 50));
  return { lines, stop: () => socket.destroy() };
}

