#!/usr/bin/env node
// Prints the README's configuration table from src/config/settings.ts (run `npm run build` first),
// so the table and the code cannot drift: `node scripts/settings-table.mjs`.
import { SETTINGS } from '../dist/src/config/settings.js';

const show = (v) => (v === undefined ? '(unset)' : Array.isArray(v) ? (v.length ? v.join(',') : '(empty)') : String(v));
console.log('| Environment | Config file key | Default | Unit | Why this default |');
console.log('| --- | --- | --- | --- | --- |');
for (const s of SETTINGS) {
  console.log(`| \`${s.env}\` | \`${s.path}\` | \`${show(s.default)}\` | ${s.unit.replace(/\|/g, '\\|')} | ${s.reason.replace(/\|/g, '\\|')} |`);
}
