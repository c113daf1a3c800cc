// TLS and basic authentication for /metrics and the health endpoints, configured the way every
// Prometheus exporter is: a web configuration file in the format of the Prometheus exporter
// toolkit (--web.config.file), so existing scrape configurations and secrets work unchanged.
//
//   tls_server_config:
//     cert_file: server.crt          # paths relative to this file
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//     client_ca_file: ca.crt
//     min_version: TLS12
//   basic_auth_users:
//     prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//   http_server_config:
//     headers: { X-Frame-Options: deny }
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SecureVersion } from 'node:tls';
import type { RequestHandler } from 'express';
import bcrypt from 'bcryptjs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../config/load.ts';

const TLS_VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const satisfies Record<string, SecureVersion>;

export const WebConfigFile = z
  .object({
    tls_server_config: z
      .object({
        cert_file: z.string().min(1),
        key_file: z.string().min(1),
        client_auth_type: z.enum(['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert']).default('NoClientCert'),
        client_ca_file: z.string().min(1).optional(),
        min_version: z.enum(['TLS10', 'TLS11', 'TLS12', 'TLS13']).default('TLS12'),
        max_version: z.enum(['TLS10', 'TLS11', 'TLS12', 'TLS13']).default('TLS13'),
      })
      .strict()
      .refine((t) => !t.client_auth_type.includes('Verify') || t.client_ca_file !== undefined, { message: 'client_ca_file is required to verify client certificates', path: ['client_ca_file'] })
      .optional(),
    http_server_config: z.object({ headers: z.record(z.string(), z.string()).default({}) }).strict().optional(),
    basic_auth_users: z
      .record(z.string().min(1), z.string().regex(/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/, 'must be a bcrypt hash ($2y$…), not a password'))
      .optional(),
  })
  .strict();

/** What the HTTP server needs from a web configuration file, files read. */
export interface WebConfig {
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean; minVersion: SecureVersion; maxVersion: SecureVersion };
  users?: Readonly<Record<string, string>>;
  headers: Readonly<Record<string, string>>;
}

/** Reads and validates a web configuration file; ConfigError (exit 2) names every problem. */
export function loadWebConfig(file: string): WebConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8')) ?? {};
  } catch (error) {
    throw new ConfigError([`--web.config.file ${file}: ${(error as Error).message.split('\n')[0]}`]);
  }
  const parsed = WebConfigFile.safeParse(raw);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `--web.config.file ${file}: ${i.path.join('.') || '(top level)'}: ${i.message}`));
  const config = parsed.data;
  const read = (path: string, field: string): Buffer => {
    try {
      return readFileSync(resolve(dirname(file), path));
    } catch (error) {
      throw new ConfigError([`--web.config.file ${file}: tls_server_config.${field}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`]);
    }
  };
  const tls = config.tls_server_config;
  return {
    tls: tls && {
      cert: read(tls.cert_file, 'cert_file'),
      key: read(tls.key_file, 'key_file'),
      ca: tls.client_ca_file ? read(tls.client_ca_file, 'client_ca_file') : undefined,
      requestCert: tls.client_auth_type !== 'NoClientCert',
      rejectUnauthorized: tls.client_auth_type === 'RequireAndVerifyClientCert' || tls.client_auth_type === 'RequireAnyClientCert',
      minVersion: TLS_VERSIONS[tls.min_version],
      maxVersion: TLS_VERSIONS[tls.max_version],
    },
    users: config.basic_auth_users,
    headers: config.http_server_config?.headers ?? {},
  };
}

/**
 * Basic authentication against bcrypt hashes. A bcrypt comparison takes tens of milliseconds
 * by design, so a successful (user, password) is remembered by its SHA-256 and compared in
 * constant time, as the exporter toolkit does; failures are not remembered.
 */
export function basicAuth(users: Readonly<Record<string, string>>): RequestHandler {
  const verified = new Map<string, Buffer>();
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
    const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? '' : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    const hash = Object.hasOwn(users, user) ? users[user]! : undefined;
    const digest = createHash('sha256').update(`${user}\u0000${password}`).digest();
    const known = verified.get(user);
    const ok = hash !== undefined && ((known !== undefined && timingSafeEqual(known, digest)) || bcrypt.compareSync(password, hash));
    if (!ok) {
      res.setHeader('WWW-Authenticate', 'Basic realm="tokenwatch"');
      res.status(401).type('text/plain').send('Unauthorized\n');
      return;
    }
    verified.set(user, digest);
    next();
  };
}
