import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startHarness } from '../support/harness.js';

/** The container and the compose stack: what can be checked without running Docker (CI runs scripts/docker-e2e.sh for that). */

function tool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
}

test('every metric the Grafana dashboard queries is one Signalbox exports', async (t) => {
  const dashboard = JSON.parse(readFileSync('config/grafana/dashboards/signalbox.json', 'utf8')) as Dashboard;
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `panel "${panel.title}" has queries`);
    for (const target of panel.targets) for (const m of target.expr.matchAll(/\bsignalbox_[a-z0-9_]+/g)) used.add(m[0]);
  }
  assert.ok(used.size >= 10, `the dashboard uses ${used.size} metrics`);

  const h = await startHarness();
  t.after(() => h.close());
  const scrape = await (await fetch(`${h.url}/metrics`)).text();
  const exported = new Map<string, string>();
  for (const m of scrape.matchAll(/^# TYPE (signalbox_[a-z0-9_]+) (\w+)$/gm)) exported.set(m[1]!, m[2]!);
  for (const name of used) {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const ok = exported.has(name) || (base !== name && exported.get(base) === 'histogram');
    assert.ok(ok, `the dashboard queries ${name}, which Signalbox does not export`);
  }
});

test('the dashboard covers what the issue asks: requests and errors per rule, spend, TTFT and latency per model, fallbacks, reloads', () => {
  const text = readFileSync('config/grafana/dashboards/signalbox.json', 'utf8');
  for (const needle of ['signalbox_requests_total', 'status=~\\"5..\\"', 'signalbox_cost_usd_total', 'signalbox_time_to_first_token_seconds_bucket',
    'signalbox_request_duration_seconds_bucket', 'signalbox_fallbacks_total', 'signalbox_rules_reloads_total',
    // Panels about rules and chat latency count chat completions, not /v1/models or refusals.
    'endpoint=\\"chat\\"', 'sum by (endpoint, status)']) {
    assert.ok(text.includes(needle), `dashboard mentions ${needle}`);
  }
});

test('promtool parses every query of the dashboard', (t) => {
  if (!tool('promtool')) {
    if (process.env.CI) assert.fail('promtool is not installed');
    t.skip('promtool not installed');
    return;
  }
  const dashboard = JSON.parse(readFileSync('config/grafana/dashboards/signalbox.json', 'utf8')) as Dashboard;
  // Each query as a recording rule (Grafana's $__rate_interval as a fixed range), so that promtool parses it.
  const rules = dashboard.panels.flatMap((panel) => panel.targets.map((target, i) => ({
    record: `dashboard:panel_${dashboard.panels.indexOf(panel)}_${i}`, expr: target.expr.replaceAll('$__rate_interval', '5m'),
  })));
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-dashboard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'rules.json');
  // JSON is YAML: promtool reads it as a rules file.
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const result = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test('promtool accepts the Prometheus configuration', (t) => {
  if (!tool('promtool')) {
    if (process.env.CI) assert.fail('promtool is not installed');
    t.skip('promtool not installed');
    return;
  }
  const result = spawnSync('promtool', ['check', 'config', 'config/prometheus/prometheus.yml'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test('docker-compose accepts the compose file', (t) => {
  if (!tool('docker-compose')) {
    if (process.env.CI) assert.fail('docker-compose is not installed');
    t.skip('docker-compose not installed');
    return;
  }
  const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { encoding: 'utf8', env: { ...process.env, OPENROUTER_API_KEY: 'x' } });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test('the Dockerfile is multi-stage on node:24-bookworm-slim, unprivileged, exec-form node, with a healthcheck that needs no curl', () => {
  // Instructions only: comments may mention what the image does not need.
  const dockerfile = readFileSync('Dockerfile', 'utf8').split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(froms, ['node:24-bookworm-slim', 'node:24-bookworm-slim']);
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  assert.match(runtime, /^USER node$/m);
  assert.match(runtime, /^EXPOSE 8080$/m);
  assert.match(runtime, /HOST=0\.0\.0\.0/);
  assert.match(runtime, /NODE_ENV=production/);
  assert.match(runtime, /^CMD \["node", "dist\/src\/main\.js"\]$/m);
  assert.match(runtime, /^HEALTHCHECK [\s\S]*CMD \["node", "-e"/m);
  assert.doesNotMatch(runtime, /curl|wget/);
  assert.doesNotMatch(runtime, /COPY (src|test)\b/, 'no sources or tests in the runtime stage');
  assert.doesNotMatch(dockerfile, /RUN --mount|<</, 'classic builder: no BuildKit-only syntax');
  const ignore = readFileSync('.dockerignore', 'utf8').split('\n');
  for (const entry of ['node_modules', 'dist', 'test', '.git', '.env']) assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
});
