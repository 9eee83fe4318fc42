/**
 * npm run bench:rules — evaluation cost of a 100-rule file with regexes and deep body paths.
 *
 * The file is generated: 100 rules, a third with `matches` on headers or the last user message,
 * a third on deep body paths (`body.metadata.tags.0`, `body.messages.-1.content`), the rest on
 * headers and derived fields, all false for the measured request except the last ones, so a
 * request walks nearly the whole file (the worst case of first-match routing). Target (issue #3):
 * median under 20 µs per decision. Writes bench/results/rules-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { compileRules } from '../src/rules/compile.js';
import type { RequestContext } from '../src/rules/decision.js';

const RULES = 100;

function generateRules(): string {
  const lines = ['version: 1', 'tiers:', '  mid: { model: openai/gpt-4o-mini, fallbacks: [anthropic/claude-3-haiku] }', 'rules:'];
  for (let i = 0; i < RULES - 2; i++) {
    let when: string;
    switch (i % 6) {
      case 0: when = `{ header.x-team: { matches: "^team-${i}-(alpha|beta)$" } }`; break;
      case 1: when = `{ request.text: { matches: "(?i)\\\\bproject-${i}\\\\b" } }`; break;
      case 2: when = `{ body.metadata.tags.0: { in: [tag-${i}, other-${i}] } }`; break;
      case 3: when = `{ body.messages.-1.content: { starts_with: "prefix-${i}" } }`; break;
      case 4: when = `{ header.x-user-tier: tier-${i}, request.tokens: { gt: ${1000 + i} } }`; break;
      default: when = `{ any: [ { body.metadata.customer.plan: plan-${i} }, { model: { matches: "^vendor-${i}/" } } ] }`;
    }
    lines.push(`  - name: rule-${i}`, `    when: ${when}`, `    route: { model: vendor/model-${i}, provider: { sort: price } }`);
  }
  lines.push('  - name: the-match', '    when: { header.x-user-tier: pro, body.metadata.customer.region: { in: [eu, us] } }', '    route: { tier: mid, max_tokens: 2048 }');
  lines.push('  - name: default', '    route: { tier: mid }');
  return `${lines.join('\n')}\n`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const ruleSet = compileRules(generateRules(), 'generated-100-rules.yaml');
const context: RequestContext = {
  headers: { 'x-user-tier': 'pro', 'x-team': 'team-platform', 'content-type': 'application/json' },
  body: {
    model: 'auto',
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Summarise the attached incident report for the on-call channel, in three bullet points.' },
    ],
    metadata: { tags: ['incident', 'sev2'], customer: { plan: 'enterprise', region: 'eu' } },
  },
  requestedModel: 'auto',
};
if (ruleSet.decide(context).rule !== 'the-match') throw new Error('benchmark request must match the 99th rule');

const BATCH = 1000;
const SAMPLES = 300;
for (let i = 0; i < 20 * BATCH; i++) ruleSet.decide(context); // warm up the JIT
const perDecisionUs: number[] = [];
for (let s = 0; s < SAMPLES; s++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < BATCH; i++) ruleSet.decide(context);
  perDecisionUs.push(Number(process.hrtime.bigint() - t0) / 1e3 / BATCH);
}
perDecisionUs.sort((a, b) => a - b);
const explainUs: number[] = [];
for (let s = 0; s < 50; s++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) ruleSet.explain(context);
  explainUs.push(Number(process.hrtime.bigint() - t0) / 1e3 / 100);
}
explainUs.sort((a, b) => a - b);

const result = {
  date: new Date().toISOString(),
  node: process.version,
  rules: ruleSet.rules.length,
  matched_rule_index: ruleSet.rules.findIndex((r) => r.name === 'the-match'),
  decide_us: { median: percentile(perDecisionUs, 0.5), p90: percentile(perDecisionUs, 0.9), p99: percentile(perDecisionUs, 0.99), min: perDecisionUs[0] },
  explain_us: { median: percentile(explainUs, 0.5) },
  target_median_us: 20,
};
const fmt = (n: number): string => n.toFixed(2).padStart(8);
console.log(`rules evaluation: ${result.rules} rules, match at #${result.matched_rule_index + 1}, ${SAMPLES} samples of ${BATCH} decisions (${process.version})`);
console.log('| measure            |   median |      p90 |      p99 |');
console.log('| ------------------ | -------- | -------- | -------- |');
console.log(`| decide (µs)        | ${fmt(result.decide_us.median)} | ${fmt(result.decide_us.p90)} | ${fmt(result.decide_us.p99)} |`);
console.log(`| explain (µs)       | ${fmt(result.explain_us.median)} |          |          |`);
console.log(`target: median decide < ${result.target_median_us} µs: ${result.decide_us.median < result.target_median_us ? 'met' : 'NOT met'}`);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/rules-${result.date.slice(0, 10)}.json`;
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`written: ${file}`);
