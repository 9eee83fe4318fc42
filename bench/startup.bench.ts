/**
 * npm run bench:startup [-- --runs 7]: cold start (spawn to first answered chat completion) and
 * idle RSS right after it, on the Node that runs this script (run it with Node 24's binary to
 * measure the image's runtime). The same Signalbox set-up as `npm run bench`: the realistic
 * rules file, metrics and info logs on. Starts alternate between Node's compile cache on (the
 * default, Node >= 22.1; the first start fills it, as a container's first start does) and off
 * (NODE_DISABLE_COMPILE_CACHE=1), so a noisy machine skews both alike. On Node 20 both are the same.
 */
import { resolve } from 'node:path';
import { median } from './support/load.js';
import { ROOT, startFakeUpstream } from './support/processes.js';
import { coldStart, type ColdStart } from './support/startup.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;
const BODY = JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'Summarise the incident report in three bullet points.' }] });
const REQUEST = { path: '/v1/chat/completions', body: BODY, headers: { 'x-user-tier': 'pro' } };

const upstream = await startFakeUpstream();
try {
  const env = {
    OPENROUTER_BASE_URL: upstream.baseUrl, OPENROUTER_API_KEY: 'sk-bench', RULES_FILE: resolve(ROOT, 'bench/rules.bench.yaml'),
    METRICS_ENABLED: 'true', LOG_LEVEL: 'info',
  };
  const measure = { cache: [] as ColdStart[], 'no cache': [] as ColdStart[] };
  for (let i = 0; i < RUNS; i++) {
    measure.cache.push(await coldStart(env, REQUEST));
    measure['no cache'].push(await coldStart({ ...env, NODE_DISABLE_COMPILE_CACHE: '1' }, REQUEST));
  }
  for (const [name, starts] of Object.entries(measure)) {
    const ms = starts.map((s) => s.ms);
    const rss = starts.map((s) => s.rssBytes / 2 ** 20);
    console.log(`${process.version}, ${name}: cold start median ${median(ms).toFixed(0)} ms, min ${Math.min(...ms).toFixed(0)} ms (${ms.map((m) => m.toFixed(0)).join(' ')}); idle RSS median ${median(rss).toFixed(1)} MiB`);
  }
} finally {
  await upstream.child.stop();
}
