// The alert catalog and what is generated from it: promtool and amtool accept it, every alert
// has tests that fire and stay silent, a runbook entry, mixin conventions, and the choice of
// evaluator never lets an alert fire from both Prometheus and Grafana.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { MonitoringConfig } from '../config.ts';
import { alertCatalog } from './catalog.ts';
import { alertmanagerConfig, grafanaAlerting, prometheusRules } from './render.ts';
import { generate } from '../generate.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const defaults = MonitoringConfig.parse({});

function run(command: string, args: string[], cwd: string): { code: number | null; output: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('alerts', () => {
  it('npm run generate is reproducible and the committed files are fresh', () => {
    const a = mkdtempSync(join(tmpdir(), 'tw-gen-a-'));
    const b = mkdtempSync(join(tmpdir(), 'tw-gen-b-'));
    const files = generate(a, defaults);
    generate(b, defaults);
    for (const file of files) {
      const text = readFileSync(join(a, file), 'utf8');
      expect(readFileSync(join(b, file), 'utf8'), file).toBe(text);
      expect(readFileSync(join(ROOT, file), 'utf8'), `${file} is stale: run npm run generate`).toBe(text);
    }
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  });

  it('promtool checks the rules and passes every unit test', () => {
    const dir = join(ROOT, 'provisioning/prometheus');
    const check = run('promtool', ['check', 'rules', 'rules/tokenwatch.rules.yml'], dir);
    expect(check.code, check.output).toBe(0);
    const test = run('promtool', ['test', 'rules', 'tests/tokenwatch.test.yml'], dir);
    expect(test.code, test.output).toBe(0);
    expect(test.output).toContain('SUCCESS');
  });

  it('under a non-default job name every promtool test passes: the exporter-down alert fires for that job only, and data alerts see its series', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-promtool-job-'));
    const config = { ...defaults, jobSelector: 'job="llm-gateway-exporter"' };
    generate(dir, config);
    const rules = readFileSync(join(dir, 'provisioning/prometheus/rules/tokenwatch.rules.yml'), 'utf8');
    expect(rules).not.toContain('job="tokenwatch"');
    const tests = readFileSync(join(dir, 'provisioning/prometheus/tests/tokenwatch.test.yml'), 'utf8');
    // The inputs carry the custom job, and the default job's series would not count.
    expect(tests).toContain('job="llm-gateway-exporter"');
    expect(tests).toContain('TokenwatchSourceDown');
    const result = run('promtool', ['test', 'rules', 'tests/tokenwatch.test.yml'], join(dir, 'provisioning/prometheus'));
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
    rmSync(dir, { recursive: true, force: true });
  });

  it('promtool fails a test whose expectation is wrong (the tests can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-promtool-'));
    generate(dir, { ...defaults, quotaWarningRatio: 0.9 });
    // The tests expect a warning at 85 %; with the threshold moved to 90 % promtool must object.
    // (Only the quota tests are kept, to keep this quick.)
    const committed = parse(readFileSync(join(ROOT, 'provisioning/prometheus/tests/tokenwatch.test.yml'), 'utf8')) as { tests: { name: string }[] };
    committed.tests = committed.tests.filter((t) => t.name.startsWith('TokenwatchQuotaHigh'));
    writeFileSync(join(dir, 'provisioning/prometheus/tests/tokenwatch.test.yml'), stringify(committed));
    const result = run('promtool', ['test', 'rules', 'tests/tokenwatch.test.yml'], join(dir, 'provisioning/prometheus'));
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('TokenwatchQuotaHigh (warning): fires at 85%');
    rmSync(dir, { recursive: true, force: true });
  });

  it('amtool accepts the Alertmanager configuration, with Slack or a webhook for chat', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-am-'));
    for (const chat of [defaults.chat, { type: 'webhook' as const, url: 'http://127.0.0.1:1/chat' }]) {
      writeFileSync(join(dir, 'am.yml'), alertmanagerConfig({ ...defaults, chat }));
      const result = run('amtool', ['check-config', 'am.yml'], dir);
      expect(result.code, result.output).toBe(0);
    }
    // The committed files, docker-compose's included.
    for (const file of ['alertmanager.yml', 'alertmanager.compose.yml']) {
      const result = run('amtool', ['check-config', file], new URL('../../provisioning/alertmanager/', import.meta.url).pathname);
      expect(result.code, `${file}: ${result.output}`).toBe(0);
    }
    const config = parse(alertmanagerConfig(defaults)) as { route: { routes: { receiver: string; matchers: string[] }[]; group_by: string[] }; inhibit_rules: unknown[] };
    expect(config.route.group_by).toEqual(['alertname', 'tenant']);
    expect(config.route.routes).toEqual([
      { receiver: 'pager', matchers: ['severity="critical"'] },
      { receiver: 'chat', matchers: ['severity="warning"'] },
      { receiver: 'null', matchers: ['severity="info"'] },
    ]);
    expect(config.inhibit_rules).toHaveLength(2);
    rmSync(dir, { recursive: true, force: true });
  });

  it('every alert follows the conventions, has a firing and a silent test, and a runbook entry', () => {
    const runbook = readFileSync(join(ROOT, 'docs/runbooks.md'), 'utf8');
    for (const rule of alertCatalog(defaults)) {
      expect(rule.alert).toMatch(/^Tokenwatch[A-Z][A-Za-z]+$/);
      expect(['critical', 'warning', 'info']).toContain(rule.severity);
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(rule.summary).toMatch(/\.$/);
      expect(rule.description).toMatch(/\{\{ \$labels\.\w+ \}\}/);
      expect(rule.tests.some((t) => t.expect.some((e) => (e.severity ?? rule.severity) === rule.severity)), `${rule.alert} ${rule.severity} fires`).toBe(true);
      expect(rule.tests.some((t) => t.expect.every((e) => (e.severity ?? rule.severity) !== rule.severity)), `${rule.alert} ${rule.severity} silent`).toBe(true);
      expect(runbook).toContain(`## ${rule.alert}\n`);
      expect(runbook).toContain(`**Severity ${rule.severity}**`);
    }
    const rules = parse(readFileSync(join(ROOT, 'provisioning/prometheus/rules/tokenwatch.rules.yml'), 'utf8')) as { groups: { rules: { alert?: string; annotations?: Record<string, string> }[] }[] };
    for (const rule of rules.groups.flatMap((g) => g.rules).filter((r) => r.alert)) {
      expect(rule.annotations!.runbook_url).toBe(`${defaults.runbookBaseUrl}#${rule.alert!.toLowerCase()}`);
    }
  });

  it('alerts evaluate in exactly one place: Prometheus by default, Grafana when chosen', () => {
    const alertsIn = (text: string) => (parse(text) as { groups: { rules: { alert?: string }[] }[] }).groups.flatMap((g) => g.rules).filter((r) => r.alert).length;
    const count = alertCatalog(defaults).length;
    expect(alertsIn(prometheusRules(defaults))).toBe(count);
    expect(grafanaAlerting(defaults, 'prom')).toBeUndefined();
    expect(existsSync(join(ROOT, 'provisioning/grafana/alerting'))).toBe(false);

    const grafanaMode = { ...defaults, evaluate: 'grafana' as const };
    expect(alertsIn(prometheusRules(grafanaMode))).toBe(0);
    const grafana = grafanaAlerting(grafanaMode, 'prom')!;
    const groups = (parse(grafana.rules) as { groups: { folder: string; interval: string; rules: { uid: string; title: string; for: string; data: { datasourceUid: string }[]; annotations: Record<string, string> }[] }[] }).groups;
    expect(groups[0]!.folder).toBe('tokenwatch');
    expect(groups[0]!.interval).toBe('60s');
    expect(groups[0]!.rules).toHaveLength(count);
    expect(new Set(groups[0]!.rules.map((r) => r.uid)).size).toBe(count);
    expect(new Set(groups[0]!.rules.map((r) => r.title)).size).toBe(count);
    for (const rule of groups[0]!.rules) {
      expect(rule.data[0]!.datasourceUid).toBe('prom');
      // `$` is environment interpolation in provisioning files.
      expect(rule.annotations.description).not.toMatch(/(^|[^$])\$labels/);
    }
    const notifications = parse(grafana.notifications) as { contactPoints: { name: string }[]; policies: { routes: unknown[] }[] };
    expect(notifications.contactPoints.map((c) => c.name)).toEqual(['tokenwatch-pager', 'tokenwatch-chat']);
    expect(grafana.notifications).toContain('$TOKENWATCH_PAGER_WEBHOOK_URL');
  });
});
