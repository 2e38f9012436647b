/**
 * A server's own latency as the kernel saw it: tcpdump on the loopback interface records when each
 * request's bytes reached the server's port and when the first bytes of its answer left it. The
 * load generator's figures include its own scheduling: wrk's open loop runs one thread per
 * connection on one CPU, and when a server answers a turn's requests together, dozens of threads
 * wake at once and wait for that CPU. At 8,000 req/s that made cardproxy's p99 read 13.6 ms where
 * the packets said 5.45 ms (the bare baseline: 1.91 and 1.82 ms).
 *
 * Needs `tcpdump` and the right to capture (root or CAP_NET_RAW); without them `startWireCapture`
 * resolves to null and the bench reports the generator's figures alone. The pairing assumes one
 * request in flight per connection, which is how the open loop (bench/lib/wrk-paced.lua) and the
 * cold storm's closed loop send.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { pinned, runTracked } from './load.mjs';
import { percentileSorted } from './util.mjs';

/** tcpdump's default buffer time-out (ms): captured packets reach it within this. */
const BLOCK_TIMEOUT_MS = 1000;

/**
 * Starts capturing the TCP segments to and from `port` on the loopback interface, on CPU `cpu`
 * (the load generator's, away from the server). Resolves once tcpdump listens, or null when it
 * cannot run here.
 * @returns { stop(expected): Promise<{ count, p50, p99, max, firstMax, laterMax } (ms) | null (packets were lost)> } or null
 */
async function startWireCapture(port, cpu) {
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-wire-'));
  const file = join(dir, 'capture.pcap');
  // A snap length of 96 bytes keeps the headers only; a 4 MiB buffer keeps up with 10,000 req/s.
  const argv = pinned(cpu, ['tcpdump', '-i', 'lo', '-nn', '-s', '96', '-B', '4096', '-w', file, `tcp port ${port}`]);
  let child;
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  // tcpdump says "listening on lo" on stderr once it captures; anything else first means it cannot.
  // On exit it says how many packets the kernel dropped for want of buffer.
  let dropped = 0;
  const listening = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    child.once('error', () => resolve(false));
    child.once('exit', () => resolve(false));
    createInterface({ input: child.stderr }).on('line', (line) => {
      const drops = /^(\d+) packets? dropped by kernel/.exec(line);
      if (drops) dropped = Number(drops[1]);
      if (line.includes('listening on')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
  });
  if (!listening) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return {
    /** @param expected the answers the load generator counted: a capture that paired 1 % fewer is refused */
    async stop(expected) {
      try {
        // tcpdump hands captured packets over in blocks, at the latest after its 1 s buffer time-out,
        // and an interrupt drops a block not yet handed over: wait for the last one first.
        await sleep(BLOCK_TIMEOUT_MS + 200);
        // `close`, not `exit`: its last stderr lines (the drop count) have been read by then.
        const closed = new Promise((resolve) => child.once('close', resolve));
        child.kill('SIGINT'); // tcpdump writes what it buffered, then exits
        await closed;
        // A missing segment would pair a request with a later answer: no figures rather than wrong ones.
        if (dropped > 0) return null;
        const text = await runTracked(['tcpdump', '-r', file, '-nn', '-tt'], 60_000);
        const wire = latencies(text, String(port));
        // A request or two at either end of the capture may not pair; a lost block loses thousands.
        return wire && wire.count >= expected * 0.99 ? wire : null;
      } catch {
        return null;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Runs `run` (a load) while capturing `port` on CPU `cpu`; the capture ends however the load does.
 * @param answersOf the answers the load generator counted, from `run`'s result
 * @returns { result, wire }: wire as `stop` gives it, or null when nothing was captured
 */
export async function whileCapturing(port, cpu, run, answersOf) {
  const capture = await startWireCapture(port, cpu);
  let result;
  try {
    result = await run();
  } catch (err) {
    await capture?.stop(Infinity);
    throw err;
  }
  return { result, wire: capture ? await capture.stop(answersOf(result)) : null };
}

/**
 * Per client port, from the first segment carrying a request's bytes to the first segment carrying
 * its answer's (tcpdump -tt text: `<seconds> IP <src>.<port> > <dst>.<port>: Flags […], …, length N`).
 * `firstMax` is the slowest of each connection's first answer, `laterMax` of all the others: when
 * every connection opens at once, the first answers are a fresh process's first wave.
 */
function latencies(text, serverPort) {
  const sentAt = new Map();
  const answered = new Set();
  const ms = [];
  let firstMax = 0;
  let laterMax = 0;
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+): .* length (\d+)/.exec(line);
    if (!m || m[4] === '0') continue;
    const [, at, from, to] = m;
    if (to === serverPort) {
      if (!sentAt.has(from)) sentAt.set(from, Number(at));
    } else if (from === serverPort && sentAt.has(to)) {
      const latency = (Number(at) - sentAt.get(to)) * 1000;
      ms.push(latency);
      sentAt.delete(to);
      if (answered.has(to)) laterMax = Math.max(laterMax, latency);
      else firstMax = Math.max(firstMax, latency);
      answered.add(to);
    }
  }
  if (ms.length === 0) return null;
  ms.sort((a, b) => a - b);
  return { count: ms.length, p50: percentileSorted(ms, 50), p99: percentileSorted(ms, 99), max: ms.at(-1), firstMax, laterMax };
}
