/** A TLS client for tests: one request per new connection, with or without a client certificate. */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { CertFiles } from './test-certs.js';

export interface TlsAnswer {
  status: number;
  body: any;
  /** The server certificate's SHA-256 fingerprint. */
  serverFingerprint: string;
}

/** One request over a new TLS connection; rejects when the handshake or the connection fails. */
export function tlsRequest(url: string, path: string, opts: { client?: CertFiles; ca: Buffer | Buffer[]; body?: unknown; method?: string }): Promise<TlsAnswer> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const options: RequestOptions = {
    method: opts.method ?? (payload ? 'POST' : 'GET'),
    ca: opts.ca,
    agent: false,
    headers: payload ? { 'content-type': 'application/json', 'plain-workspace-id': 'w_tls' } : {},
    ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, url), options, (res) => {
      const chunks: Buffer[] = [];
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null, serverFingerprint: fingerprint });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
