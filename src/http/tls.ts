/**
 * TLS on the public port, with Plain's client certificates (mutual TLS).
 *
 * `require` makes Node refuse, in the handshake, a client whose certificate no configured CA
 * signed. `request` asks for a certificate but lets the handshake finish, so that the request can
 * be answered `403` with a reason and logged. The certificate, key and CA files are read at start
 * and again on SIGHUP; only new connections see the new ones.
 */
import { readFileSync } from 'node:fs';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { TlsConfig } from '../config/schema.js';

/** The files' contents, as `tls.createSecureContext` takes them. */
export type TlsFiles = Required<Pick<SecureContextOptions, 'key' | 'cert'>> & Pick<SecureContextOptions, 'ca'>;

/** A file named in `listen.tls` that could not be read. */
export class TlsFileError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    cause: unknown,
  ) {
    super(`cannot read listen.tls.${field} ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
    this.name = 'TlsFileError';
  }
}

function read(file: string, field: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(file, field, err);
  }
}

/** Reads the certificate, key and client CA files; throws a `TlsFileError` naming the first unreadable one. */
export function readTlsFiles(tls: TlsConfig): TlsFiles {
  const files: TlsFiles = { cert: read(tls.certFile, 'certFile'), key: read(tls.keyFile, 'keyFile') };
  if (tls.clientCertificate !== 'off') files.ca = tls.clientCaFiles.map((file, i) => read(file, `clientCaFiles.${i}`));
  return files;
}

/** The `https.createServer` options for `tls` with its files' contents. */
export function httpsServerOptions(tls: TlsConfig, files: TlsFiles): TlsOptions {
  return {
    ...files,
    requestCert: tls.clientCertificate !== 'off',
    rejectUnauthorized: tls.clientCertificate === 'require',
  };
}
