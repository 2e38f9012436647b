/** The Plain mTLS CA shipped as config/plain-mtls-ca.pem is the one Plain publishes. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('config/plain-mtls-ca.pem', () => {
  it("is Plain's CA certificate, by its published SHA-256 fingerprint", () => {
    const cert = new X509Certificate(readFileSync(new URL('../../config/plain-mtls-ca.pem', import.meta.url)));
    expect(cert.fingerprint256).toBe('A8:1A:37:DB:AD:10:E1:D1:EA:1A:60:FD:50:E4:E2:BD:A5:41:21:EE:B8:56:40:2B:20:B4:03:07:AF:26:54:F1');
    expect(cert.subject).toBe('CN=PlainMtlsCA');
    expect(cert.ca).toBe(true);
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2124);
  });
});
