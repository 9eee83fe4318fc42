#!/usr/bin/env node
// Checks labelled prompt files (JSON Lines, see datasets/classifier/LABELLING.md) and prints
// their distribution. Usage: node scripts/classifier-data-check.mjs FILE...
import { readFileSync } from 'node:fs';

const COMPLEXITY = ['simple', 'medium', 'complex', 'frontier'];
const TASKS = ['chat', 'simple_qa', 'classification', 'translation', 'summarization', 'extraction',
  'creative_writing', 'code_generation', 'code_review', 'analysis', 'math', 'deep_reasoning'];
const TAGS = ['trap_keyword_up', 'trap_keyword_down', 'trap_long_trivial', 'long_doc', 'multi_turn', 'code', 'math_notation'];
const ROLES = ['system', 'user', 'assistant', 'tool'];

const errors = [];
const ids = new Set();
const texts = new Map();
const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
const by = { complexity: new Map(), task: new Map(), lang: new Map(), tag: new Map() };
let total = 0;
for (const file of process.argv.slice(2)) {
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let row;
    try { row = JSON.parse(line); } catch (e) { errors.push(`${where}: not JSON (${e.message})`); return; }
    total++;
    if (typeof row.id !== 'string' || row.id === '') errors.push(`${where}: id missing`);
    else if (ids.has(row.id)) errors.push(`${where}: duplicate id ${row.id}`);
    else ids.add(row.id);
    if (!COMPLEXITY.includes(row.complexity)) errors.push(`${where}: complexity ${JSON.stringify(row.complexity)}`);
    if (!TASKS.includes(row.task)) errors.push(`${where}: task ${JSON.stringify(row.task)}`);
    if (typeof row.lang !== 'string' || !/^[a-z]{2}$/.test(row.lang)) errors.push(`${where}: lang ${JSON.stringify(row.lang)}`);
    for (const tag of row.tags ?? []) if (!TAGS.includes(tag)) errors.push(`${where}: tag ${tag}`);
    let key;
    if (typeof row.text === 'string') {
      if (row.messages !== undefined) errors.push(`${where}: both text and messages`);
      if (row.text.trim() === '') errors.push(`${where}: empty text`);
      key = row.text;
    } else if (Array.isArray(row.messages) && row.messages.length > 0) {
      for (const m of row.messages) {
        if (!ROLES.includes(m?.role) || typeof m.content !== 'string') errors.push(`${where}: bad message ${JSON.stringify(m).slice(0, 80)}`);
      }
      const last = row.messages.at(-1);
      if (last?.role !== 'user') errors.push(`${where}: last message is not the user's`);
      key = JSON.stringify(row.messages);
    } else {
      errors.push(`${where}: neither text nor messages`);
      return;
    }
    const normal = key.toLowerCase().replace(/\s+/g, ' ').trim();
    if (texts.has(normal)) errors.push(`${where}: same prompt as ${texts.get(normal)}`);
    else texts.set(normal, where);
    count(by.complexity, row.complexity);
    count(by.task, row.task);
    count(by.lang, row.lang);
    for (const tag of row.tags ?? []) count(by.tag, tag);
  });
}
for (const [name, map] of Object.entries(by)) {
  console.log(`${name}: ${[...map].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}
console.log(`total: ${total}`);
if (errors.length > 0) {
  console.error(errors.slice(0, 50).join('\n'));
  console.error(`${errors.length} error(s)`);
  process.exitCode = 1;
}
