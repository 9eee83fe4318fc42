#!/usr/bin/env node
// The measured part of docs/classifiers.md and docs/benchmarks.md (accuracy, under-routing, task
// agreement, latency, the hybrid's LLM share, the ceiling, which targets are met), generated from
// a `npm run bench:classifier` results file so that the docs say what was measured:
//   node scripts/classifier-docs.mjs [bench/results/classifier-DATE.json]          print it
//   node scripts/classifier-docs.mjs [bench/results/classifier-DATE.json] --write  replace it between
//     the classifier-bench markers of both files
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2).filter((a) => a !== '--write');
const file = args[0] ?? `bench/results/${readdirSync('bench/results').filter((f) => /^classifier-\d{4}-\d\d-\d\d\.json$/.test(f)).sort().at(-1)}`;
const r = JSON.parse(readFileSync(file, 'utf8'));
if (r.quick) throw new Error(`${file} is a quick run: its figures are not meaningful`);

const pct = (x) => `${(x * 100).toFixed(1)}%`;
const us = (x) => `${x.toFixed(1)} µs`;
const num = (n) => n.toLocaleString('en-US');
const full = r.latency.find((l) => l.key === 'full_window');
const short = r.latency.find((l) => l.key === 'chars_200');
const share = (min) => r.llm_share.find((s) => s.min_confidence === min).share;
const label = (raise) => (raise === 0 ? '0 (off)' : String(raise));
const t = r.targets;

const rows = [
  '| method | complexity agreement | under-routing | task agreement | over-routing | latency | cost per request |',
  '| --- | ---: | ---: | ---: | ---: | --- | --- |',
  ...r.accuracy.map((a, i) => `| local, \`raise_below_confidence\` ${label(a.raise_below_confidence)} | ${pct(a.complexity_agreement)} | ${pct(a.under_routing)} | ${pct(a.task_agreement)} | ${pct(a.over_routing)} | ${i === 0 ? `${us(full.p50_us)} p50, ${us(full.p99_us)} p99 at the full window; ${us(short.p50_us)} p50 at 200 characters` : 'same'} | none |`),
  '| llm | not measured here | not measured here | not measured here | | one upstream round trip, at most `timeout_ms` (1.5 s) | one call to `llm.model`: the built-in prompt (about 300 tokens) and the window (up to about 1,000), a one-line answer; nothing when cached |',
  `| hybrid (\`min_confidence\` 0.7) | not measured here | not measured here | not measured here | | local for the ${pct(1 - share(0.7))} of held-out prompts at or above 0.7; an LLM round trip for the other ${pct(share(0.7))} | an LLM call for ${pct(share(0.7))} of requests (${pct(share(0.5))} at 0.5, ${pct(share(0.6))} at 0.6, ${pct(share(0.8))} at 0.8) |`,
  '| embedding | not measured here | not measured here | not measured here | | one embeddings call per new window | one embedding of the window |',
  `| **ceiling**: a second, blind labelling of the held-out split against the first | ${pct(r.ceiling.complexity_agreement)} | ${pct(r.ceiling.under_routing)} | ${pct(r.ceiling.task_agreement)} | | | |`,
];

const best = r.accuracy[0];
const underMet = r.accuracy.filter((a) => a.under_routing <= t.underRouting);
const met = [];
const missed = [];
(full.p50_us < t.p50Us ? met : missed).push(`the latency (${us(full.p50_us)} p50 at the full window, target under ${t.p50Us} µs)`);
(best.task_agreement >= t.taskAgreement ? met : missed).push(`task agreement (${pct(best.task_agreement)}, target ${pct(t.taskAgreement)})`);
(best.complexity_agreement >= t.complexityAgreement ? met : missed).push(`complexity agreement (${pct(best.complexity_agreement)} with \`raise_below_confidence\` off, target ${pct(t.complexityAgreement)})`);
if (underMet.length > 0) {
  const a = underMet[0];
  met.push(`under-routing at \`raise_below_confidence\` ${a.raise_below_confidence} (${pct(a.under_routing)}, target at most ${pct(t.underRouting)}), but then only ${pct(a.complexity_agreement)} of verdicts match their label: the rest are mostly a tier too high (over-routing ${pct(a.over_routing)})`);
} else {
  missed.push(`under-routing (at best ${pct(Math.min(...r.accuracy.map((a) => a.under_routing)))}, target at most ${pct(t.underRouting)})`);
}
const summary = `Measured by \`npm run bench:classifier\` on the held-out split (${num(r.prompts)} prompts never trained on), on
this machine (2 cores, Node ${r.node.slice(1)}; ${file}):

${rows.join('\n')}

The issue's targets for the local classifier: **met**: ${met.join('; ')}. **Missed**: ${missed.length ? missed.join('; ') : 'none'}.`;

const bench = `The local classifier on the ${num(r.prompts)} held-out prompts, Node ${r.node.slice(1)}, 2 vCPU (${file}); artifact ${num(r.artifact_bytes)} bytes (2^${r.hash_bits} buckets):

${rows.slice(0, 2 + r.accuracy.length).join('\n')}

- Ceiling (a second, blind labelling against the first): complexity ${pct(r.ceiling.complexity_agreement)}, task ${pct(r.ceiling.task_agreement)}.
- Hybrid LLM share (local confidence below \`min_confidence\`): ${r.llm_share.map((s) => `${pct(s.share)} at ${s.min_confidence}`).join(', ')}.
- Per classification (\`classifierInput\` + \`classify\`): ${us(full.p50_us)} p50 and ${us(full.p99_us)} p99 at the full window (${full.case}), ${us(short.p50_us)} p50 at 200 characters; ${Math.round(full.bytes_per_classification)} and ${Math.round(short.bytes_per_classification)} heap bytes per call.
- Targets: met: ${met.join('; ')}. Missed: ${missed.length ? missed.join('; ') : 'none'}. Why, measured: [classifiers.md](classifiers.md#accuracy-latency-and-cost-per-method).`;

function replace(path, text) {
  const doc = readFileSync(path, 'utf8');
  const start = doc.indexOf('\n', doc.indexOf('<!-- classifier-bench')) + 1;
  const end = doc.indexOf('<!-- /classifier-bench -->');
  if (start <= 0 || end === -1) throw new Error(`${path} has no classifier-bench markers`);
  writeFileSync(path, `${doc.slice(0, start)}${text}\n${doc.slice(end)}`);
}
if (process.argv.includes('--write')) {
  replace('docs/classifiers.md', summary);
  replace('docs/benchmarks.md', bench);
} else {
  console.log(summary);
  console.log('\n---\n');
  console.log(bench);
}
