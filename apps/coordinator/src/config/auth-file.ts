import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  bearerToken,
  type CallInfo,
  type Identity,
  peerCertificate,
  unauthenticated,
} from '@lethe/rpc';
import { z } from 'zod';

/** Roles of the public API: admins train, forget and cancel; viewers read. */
export const ROLES = ['admin', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

const TOKEN_KEY = /^sha256:[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9@._:-]{0,127}$/;

const authFileSchema = z
  .object({
    /** `sha256:<hex of the token's SHA-256>` → who holds the token. */
    tokens: z
      .record(
        z.string(),
        z.object({ subject: z.string().regex(NAME), role: z.enum(ROLES) }).strict(),
      )
      .default({}),
    /** A client certificate's subject common name → its role (subject: the CN by default). */
    certificates: z
      .record(
        z.string().min(1),
        z.object({ role: z.enum(ROLES), subject: z.string().regex(NAME).optional() }).strict(),
      )
      .default({}),
  })
  .strict();

/**
 * Who may call the public API, from the auth file: bearer tokens by their SHA-256 (the file
 * never holds a token), and client certificates by their common name.
 */
export class AuthPolicy {
  private readonly tokens: ReadonlyMap<string, Identity>;
  private readonly certificates: ReadonlyMap<string, Identity>;

  constructor(file: z.infer<typeof authFileSchema>) {
    this.tokens = new Map(
      Object.entries(file.tokens).map(([key, { subject, role }]) => [
        key.slice('sha256:'.length),
        { subject, role, via: 'token' as const },
      ]),
    );
    this.certificates = new Map(
      Object.entries(file.certificates).map(([cn, { subject, role }]) => [
        cn,
        { subject: subject ?? cn, role, via: 'certificate' as const },
      ]),
    );
  }

  get size(): { tokens: number; certificates: number } {
    return { tokens: this.tokens.size, certificates: this.certificates.size };
  }

  /**
   * The caller: its bearer token when it sends one (an unknown token is UNAUTHENTICATED, even
   * with a good certificate), else its verified client certificate's common name (one not in
   * the file is UNAUTHENTICATED), else undefined (no credentials).
   */
  authenticate(call: CallInfo): Identity | undefined {
    const token = bearerToken(call.metadata);
    if (token !== undefined) {
      const identity = this.tokens.get(createHash('sha256').update(token).digest('hex'));
      if (!identity) throw unauthenticated('invalid bearer token');
      return identity;
    }
    const certificate = peerCertificate(call);
    if (!certificate) return undefined;
    const identity = this.certificates.get(certificate.commonName);
    if (!identity) {
      throw unauthenticated(
        `client certificate CN=${certificate.commonName} has no role in the auth file`,
      );
    }
    return identity;
  }

  /** The role of an API user's certificate common name; undefined for any other name. */
  certificateRole(commonName: string): string | undefined {
    return this.certificates.get(commonName)?.role;
  }
}

/** Parses an auth file's text; errors say what is wrong, never quoting a value. */
export function parseAuthFile(text: string): AuthPolicy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('not valid JSON');
  }
  const tokens = (json as { tokens?: unknown } | null)?.tokens;
  if (tokens !== null && typeof tokens === 'object') {
    const bad = Object.keys(tokens).findIndex((key) => !TOKEN_KEY.test(key));
    if (bad >= 0) {
      throw new Error(
        `tokens: key #${bad + 1} is not sha256:<64 lower-case hex digits>; the file holds each token's SHA-256, never the token (scripts/new-token.sh writes entries)`,
      );
    }
  }
  const parsed = authFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // Paths of token entries are hashes: harmless, but shorten them.
    const path = issue.path.map((p) => (typeof p === 'string' ? p.slice(0, 20) : p)).join('.');
    throw new Error(`${path || 'file'}: ${issue.message}`);
  }
  return new AuthPolicy(parsed.data);
}

/** Reads and parses the auth file at `path`. */
export function loadAuthFile(path: string): AuthPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(
      `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  try {
    return parseAuthFile(text);
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}
