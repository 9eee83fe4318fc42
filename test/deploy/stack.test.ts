import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { loadKeysFile } from '../../src/accounts/keys-file.js';
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

interface ComposeService {
  image?: string;
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: string[];
  command?: string[];
}

/** The compose file as compose reads it: `<<` merges the replicas' shared anchor. */
function composeServices(): Record<string, ComposeService> {
  return (parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, ComposeService> }).services;
}

/** The demo key of config/keys.example.yaml: published in the file and the docs, never a secret. */
const DEMO_KEY = 'sk-sb-demo-not-a-secret';

test('the compose stack: two Signalbox replicas on distinct host ports sharing one Redis, with the example keys, both scraped by Prometheus', () => {
  const services = composeServices();
  const redis = services.redis;
  assert.ok(redis, 'a redis service');
  assert.match(redis.image ?? '', /^redis:7(\.\d+)*-bookworm$/, 'Debian-based like the Signalbox image');
  assert.ok(redis.command?.includes('--appendonly') && redis.command[redis.command.indexOf('--appendonly') + 1] === 'yes', 'spend survives a restart of Redis');
  assert.ok(redis.volumes?.includes('redis-data:/data'));
  const replicas = ['signalbox-1', 'signalbox-2'].map((name) => ({ name, service: services[name]! }));
  const hostPorts = new Set<string>();
  for (const { name, service } of replicas) {
    assert.ok(service, `a ${name} service`);
    assert.equal(service.image, 'signalbox:local');
    assert.equal(service.environment?.REDIS_URL, 'redis://redis:6379', `${name} keeps its rate limits in the shared Redis`);
    assert.ok(service.depends_on?.includes('redis'));
    assert.equal(service.environment?.KEYS_FILE, '/etc/signalbox/keys/keys.yaml');
    assert.ok(service.volumes?.includes('./config/keys.example.yaml:/etc/signalbox/keys/keys.yaml:ro'), `${name} mounts the example keys`);
    assert.match(service.environment?.OPENROUTER_API_KEY ?? '', /^\$\{OPENROUTER_API_KEY:\?/, 'required: with client keys the server key pays');
    for (const port of service.ports ?? []) hostPorts.add(port.split(':')[0]!);
  }
  assert.deepEqual([...hostPorts].sort(), ['8080', '8081'], 'one host port per replica');
  const data = replicas.map(({ service }) => service.volumes?.find((v) => v.endsWith(':/var/lib/signalbox')));
  assert.notEqual(data[0], data[1], 'a DATA_DIR volume per replica');
  const prometheus = parse(readFileSync('config/prometheus/prometheus.yml', 'utf8')) as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
  const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
  assert.deepEqual(targets.sort(), ['signalbox-1:8080', 'signalbox-2:8080']);
});

test('docker-compose config resolves both replicas and Redis, and refuses to start without OPENROUTER_API_KEY', (t) => {
  if (!tool('docker-compose')) {
    if (process.env.CI) assert.fail('docker-compose is not installed');
    t.skip('docker-compose not installed');
    return;
  }
  const env = { ...process.env, OPENROUTER_API_KEY: 'x' };
  const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], { encoding: 'utf8', env });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  for (const name of ['signalbox-1', 'signalbox-2', 'redis', 'prometheus', 'grafana']) assert.ok(result.stdout.split('\n').includes(name), `${name} in ${result.stdout}`);
  const { OPENROUTER_API_KEY: _unset, ...without } = env;
  const refused = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { encoding: 'utf8', env: without });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /set OPENROUTER_API_KEY/);
});

test('the example keys file loads with the real loader, and its documented demo key is the caller demo', () => {
  const ring = loadKeysFile('config/keys.example.yaml', {});
  assert.equal(ring.size, 1);
  const demo = ring.lookup(DEMO_KEY);
  assert.equal(demo?.name, 'demo');
  assert.equal(demo.tier, 'free');
  assert.equal(demo.team?.name, 'demo');
  assert.equal(ring.lookup('sk-sb-demo-not-a-secreT'), undefined);
  assert.match(readFileSync('config/keys.example.yaml', 'utf8'), new RegExp(`^#\\s+${DEMO_KEY}$`, 'm'), 'the file says which key it is');
  assert.ok(readFileSync('docs/keys-and-budgets.md', 'utf8').includes(DEMO_KEY), 'the docs name the demo key');
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
