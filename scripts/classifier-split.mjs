#!/usr/bin/env node
// Splits the labelled prompt parts into the training set and the held-out set, once: the two
// files are what ships (datasets/classifier/train.jsonl, heldout.jsonl); this script records how
// they were made. Prompts that share a pasted document or a conversation's opening turn are
// grouped and go to the same side, so that no near-duplicate leaks from training into the
// held-out figures. About 20% of groups are held out, chosen by a hash of the group's smallest id
// (stable: adding a part does not move the prompts already split).
// Usage: node scripts/classifier-split.mjs OUT_DIR PART.jsonl...
// (The writers' parts are not shipped; `node scripts/classifier-split.mjs OUT datasets/classifier/train.jsonl
// datasets/classifier/heldout.jsonl` re-splits the shipped set into the same two files.)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [outDir, ...parts] = process.argv.slice(2);
if (!outDir || parts.length === 0) {
  console.error('usage: classifier-split.mjs OUT_DIR PART.jsonl...');
  process.exit(2);
}
const all = parts.flatMap((file) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l)));
// The same prompt written by two writers ("hi", "what's the capital of France?") is kept once: the first.
const seen = new Set();
const rows = all.filter((row) => {
  const key = (row.messages ? JSON.stringify(row.messages) : row.text).toLowerCase().replace(/\s+/g, ' ').trim();
  if (seen.has(key)) return false;
  seen.add(key);
  return true;
});
if (rows.length < all.length) console.log(`${all.length - rows.length} repeated prompts dropped`);

/**
 * What ties prompts together: every line of 60 characters or more of a long text (a pasted
 * document shows the same lines whatever request surrounds it), and a conversation's opening
 * user turn.
 */
/** Letters and digits only, lower case: near-identical texts (a colon more, a space less) compare equal. */
const letters = (text) => text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');

function anchors(row) {
  const texts = row.messages ? row.messages.map((m) => m.content) : [row.text];
  const out = [];
  for (const t of texts) {
    if (t.length < 600) continue;
    for (const line of t.split(/\n|(?<=[.!?。！？])\s/)) {
      const normal = letters(line);
      if (normal.length >= 50) out.push(`line:${normal}`);
    }
  }
  if (row.messages) {
    const first = row.messages.find((m) => m.role === 'user');
    if (first && row.messages.length > 1) out.push(`opening:${letters(first.content).slice(0, 60)}`);
  }
  return out;
}

// Union-find over prompts sharing an anchor.
const parent = rows.map((_, i) => i);
const find = (i) => (parent[i] === i ? i : (parent[i] = find(parent[i])));
const byAnchor = new Map();
rows.forEach((row, i) => {
  for (const a of anchors(row)) {
    if (byAnchor.has(a)) parent[find(i)] = find(byAnchor.get(a));
    else byAnchor.set(a, i);
  }
});
// A group is named by its smallest id: the split depends on the prompts, not on their order, so
// re-splitting the shipped train.jsonl + heldout.jsonl gives them back.
const smallest = new Map();
rows.forEach((row, i) => {
  const root = find(i);
  if (!smallest.has(root) || row.id < smallest.get(root)) smallest.set(root, row.id);
});
const groupId = (i) => smallest.get(find(i));
const heldOut = (i) => createHash('sha256').update(groupId(i)).digest()[0] < 52; // 52/256: about 20%
const train = [];
const held = [];
rows.forEach((row, i) => (heldOut(i) ? held : train).push(JSON.stringify(row)));
writeFileSync(join(outDir, 'train.jsonl'), `${train.join('\n')}\n`);
writeFileSync(join(outDir, 'heldout.jsonl'), `${held.join('\n')}\n`);
const groups = new Set(rows.map((_, i) => find(i))).size;
console.log(`${rows.length} prompts in ${groups} groups: ${train.length} for training, ${held.length} held out`);
