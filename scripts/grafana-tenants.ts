// Applies the tenants' Grafana organisations (provisioning/grafana/tenants/*.json, rendered by
// `npm run generate` from the tenants file) through Grafana's HTTP API, since organisations,
// their users and their datasources cannot be file-provisioned: per tenant an organisation,
// its two datasources (ClickHouse as the tenant's read-only user, Prometheus through the
// label-enforcing proxy), its dashboards, and its viewers with the Viewer role. Idempotent:
// run it after every `npm run generate` and at every start (docker-compose.yml does).
//   GRAFANA_URL=http://localhost:3000 GRAFANA_ADMIN_PASSWORD=… node scripts/grafana-tenants.ts
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Bundle {
  org: string;
  tenant: string;
  viewers: string[];
  datasources: Record<string, unknown>[];
  dashboards: { folder: string; json: { path: string } }[];
}

const ROOT = new URL('../', import.meta.url).pathname;
const grafana = process.env.GRAFANA_URL ?? 'http://localhost:3000';
const auth = `Basic ${Buffer.from(`${process.env.GRAFANA_ADMIN_USER ?? 'admin'}:${process.env.GRAFANA_ADMIN_PASSWORD ?? 'admin'}`).toString('base64')}`;

async function api<T>(method: string, path: string, body?: unknown, org?: number): Promise<{ status: number; body: T }> {
  const response = await fetch(`${grafana}${path}`, {
    method,
    headers: { authorization: auth, 'content-type': 'application/json', ...(org ? { 'X-Grafana-Org-Id': String(org) } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

/** $NAME in a datasource definition, from the environment (as Grafana's provisioning does). */
function interpolate(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(/\$([A-Z][A-Z0-9_]*)/g, (all, name: string) => process.env[name] ?? all);
  if (Array.isArray(value)) return value.map(interpolate);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]));
  return value;
}

async function applyBundle(bundle: Bundle): Promise<void> {
  let org = (await api<{ id: number }>('GET', `/api/orgs/name/${encodeURIComponent(bundle.org)}`)).body.id;
  if (!org) org = (await api<{ orgId: number }>('POST', '/api/orgs', { name: bundle.org })).body.orgId;
  for (const datasource of bundle.datasources.map((d) => interpolate(d) as Record<string, unknown>)) {
    const existing = await api('GET', `/api/datasources/uid/${datasource.uid}`, undefined, org);
    const result = existing.status === 200
      ? await api('PUT', `/api/datasources/uid/${datasource.uid}`, datasource, org)
      : await api('POST', '/api/datasources', datasource, org);
    if (result.status >= 300) throw new Error(`${bundle.org}: datasource ${String(datasource.uid)}: HTTP ${result.status} ${JSON.stringify(result.body)}`);
  }
  const folders = new Map<string, string>();
  for (const { folder, json } of bundle.dashboards) {
    if (!folders.has(folder)) {
      const uid = `tw-${bundle.tenant}-${folder.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`.slice(0, 40);
      const found = await api('GET', `/api/folders/${uid}`, undefined, org);
      if (found.status !== 200) await api('POST', '/api/folders', { uid, title: folder }, org);
      folders.set(folder, uid);
    }
    const dashboard = JSON.parse(readFileSync(join(ROOT, json.path), 'utf8')) as Record<string, unknown>;
    const result = await api('POST', '/api/dashboards/db', { dashboard: { ...dashboard, id: null }, folderUid: folders.get(folder), overwrite: true }, org);
    if (result.status >= 300) throw new Error(`${bundle.org}: dashboard ${String(dashboard.uid)}: HTTP ${result.status} ${JSON.stringify(result.body)}`);
  }
  for (const viewer of bundle.viewers) {
    const user = await api<{ id?: number }>('GET', `/api/users/lookup?loginOrEmail=${encodeURIComponent(viewer)}`);
    if (user.status === 404) {
      // A first password, printed once; with SSO the viewer signs in through it instead.
      const password = randomBytes(12).toString('base64url');
      const created = await api('POST', '/api/admin/users', { name: viewer, email: viewer, login: viewer, password, OrgId: org });
      if (created.status >= 300) throw new Error(`${bundle.org}: viewer ${viewer}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
      process.stdout.write(`${bundle.org}: created viewer ${viewer} with the password ${password} (to be changed at first sign-in)\n`);
    }
    const added = await api('POST', `/api/orgs/${org}/users`, { loginOrEmail: viewer, role: 'Viewer' });
    if (added.status >= 300 && added.status !== 409) throw new Error(`${bundle.org}: viewer ${viewer}: HTTP ${added.status} ${JSON.stringify(added.body)}`);
  }
  process.stdout.write(`${bundle.org}: organisation ${org} with ${bundle.datasources.length} datasources, ${bundle.dashboards.length} dashboards, ${bundle.viewers.length} viewers\n`);
}

const dir = join(ROOT, 'provisioning/grafana/tenants');
for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) await applyBundle(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Bundle);
