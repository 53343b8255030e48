import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import {
  CallCredentials,
  ChannelCredentials,
  type ChannelOptions,
  experimental,
  ServerCredentials,
  type ServerUnaryCall,
} from '@grpc/grpc-js';

/** What the security helpers read of a server call (any kind of call has it). */
export type CallInfo = Pick<
  ServerUnaryCall<unknown, unknown>,
  'metadata' | 'getPeer' | 'getPath' | 'getAuthContext'
>;

/** A certificate, its private key and the CA certificates that verify peers, as PEM. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Paths of the PEM files of a TlsMaterial. */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A TLS file that cannot be used; `field` says which one (cert, key or ca). */
export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';

  constructor(
    readonly field: keyof TlsFiles,
    message: string,
  ) {
    super(message);
  }
}

const WHAT: Record<keyof TlsFiles, string> = {
  cert: 'a PEM certificate',
  key: 'a PEM private key',
  ca: 'PEM CA certificates',
};

function read(field: keyof TlsFiles, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new TlsFileError(field, `cannot read ${path}: ${code}`);
  }
}

/**
 * Reads and checks the PEM files of a certificate, its key and the CA: each readable and
 * parseable, and the key the certificate's. Errors name the file, never its contents.
 */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = read('cert', files.cert);
  const key = read('key', files.key);
  const ca = read('ca', files.ca);
  const parse = <T>(field: keyof TlsFiles, path: string, parser: () => T): T => {
    try {
      return parser();
    } catch {
      throw new TlsFileError(field, `${path} does not hold ${WHAT[field]}`);
    }
  };
  const certificate = parse('cert', files.cert, () => new X509Certificate(cert));
  const privateKey = parse('key', files.key, () => createPrivateKey(key));
  parse('ca', files.ca, () => new X509Certificate(ca));
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsFileError('key', `${files.key} is not the private key of ${files.cert}`);
  }
  return { cert, key, ca };
}

/**
 * What a TLS server asks of its clients: `none` (server TLS only), `request` (a client
 * certificate is asked for, and verified against the CA when sent, but a client without one
 * still connects: check it per call with `peerCertificate`), `require` (mutual TLS: no
 * connection without a certificate the CA signed).
 */
export type ClientCertificates = 'none' | 'request' | 'require';

/**
 * Server credentials that request a client certificate without requiring one. grpc-js'
 * createSsl either requires it or never asks; Node's TLS server does both through
 * requestCert + rejectUnauthorized, which the ServerCredentials constructor passes on.
 */
class RequestClientCertificate extends ServerCredentials {
  constructor(material: TlsMaterial) {
    super(
      { requestCert: true, rejectUnauthorized: false },
      { ca: material.ca, cert: [material.cert], key: [material.key] },
    );
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** TLS server credentials from a certificate, its key and the CA that verifies clients. */
export function tlsServerCredentials(
  material: TlsMaterial,
  clients: ClientCertificates,
): ServerCredentials {
  if (clients === 'request') return new RequestClientCertificate(material);
  return ServerCredentials.createSsl(
    material.ca,
    [{ cert_chain: material.cert, private_key: material.key }],
    clients === 'require',
  );
}

/**
 * TLS channel credentials: the server is verified against `ca` (the system's roots without
 * one); `cert` and `key` together are this client's certificate for mutual TLS.
 */
export function tlsChannelCredentials(material: Partial<TlsMaterial> = {}): ChannelCredentials {
  return new TlsChannelCredentials(
    createSecureContext({
      ...(material.ca ? { ca: material.ca } : {}),
      ...(material.cert ? { cert: material.cert } : {}),
      ...(material.key ? { key: material.key } : {}),
    }),
  );
}

/**
 * The TLS server name (SNI) to send for a gRPC target: its host when that is a DNS name, none
 * for an IP address (RFC 6066 allows only host names, and Node warns with DEP0123 when given an
 * IP); `grpc.ssl_target_name_override` wins.
 */
export function tlsServerName(
  target: experimental.GrpcUri,
  options: ChannelOptions = {},
): string | undefined {
  const override = options['grpc.ssl_target_name_override'];
  if (typeof override === 'string' && override !== '') return override;
  const host = experimental.splitHostPort(target.path)?.host ?? target.path;
  return isIP(host) === 0 ? host : undefined;
}

/**
 * TLS channel credentials as grpc-js' createSsl makes them, except for the server name: grpc-js
 * always sends the target's host, an IP address included. Without a server name Node verifies
 * the certificate against the address it connected to (its IP SANs), so nothing is lost.
 */
class TlsChannelCredentials extends ChannelCredentials {
  constructor(private readonly context: SecureContext) {
    super();
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  _createSecureConnector(
    target: experimental.GrpcUri,
    options: ChannelOptions,
    callCredentials: CallCredentials = CallCredentials.createEmpty(),
  ): experimental.SecureConnector {
    const host = experimental.splitHostPort(target.path)?.host ?? target.path;
    const servername = tlsServerName(target, options);
    const context = this.context;
    return {
      connect: (socket: Socket) =>
        new Promise((resolve, reject) => {
          const secured = tlsConnect(
            {
              socket,
              secureContext: context,
              host,
              ...(servername !== undefined ? { servername } : {}),
              ALPNProtocols: ['h2'],
            },
            () => {
              if (secured.authorized) resolve({ socket: secured, secure: true });
              else reject(secured.authorizationError);
            },
          );
          secured.on('error', reject);
        }),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => callCredentials,
      destroy: () => undefined,
    };
  }
}

/** A peer's verified client certificate: its subject's common name and SHA-256 fingerprint. */
export interface PeerCertificate {
  commonName: string;
  fingerprint256: string;
}

/**
 * The client certificate of the call's peer when the connection is TLS and the certificate was
 * verified against the server's CA; undefined otherwise (plaintext, no certificate, or one the
 * CA did not sign).
 */
export function peerCertificate(call: CallInfo): PeerCertificate | undefined {
  const certificate = call.getAuthContext().sslPeerCertificate;
  if (!certificate) return undefined;
  const cn = (certificate.subject as Record<string, string | string[] | undefined> | undefined)?.[
    'CN'
  ];
  const commonName = Array.isArray(cn) ? cn[0] : cn;
  if (commonName === undefined || commonName === '') return undefined;
  return { commonName, fingerprint256: certificate.fingerprint256 };
}
