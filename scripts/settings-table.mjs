#!/usr/bin/env node
// The README's configuration table, generated from src/config/settings.ts (run `npm run build`
// first) so the table and the code cannot drift:
//   node scripts/settings-table.mjs          print it
//   node scripts/settings-table.mjs --write  replace it in README.md, between the settings-table markers
import { readFileSync, writeFileSync } from 'node:fs';
import { SETTINGS } from '../dist/src/config/settings.js';

const cell = (s) => String(s).replace(/\|/g, '\\|');
const show = (v) => (v === undefined ? '(unset)' : Array.isArray(v) ? (v.length ? v.join(',') : '(empty)') : String(v));
const rows = [
  '| Environment | Config file key | Default | Unit | Why this default |',
  '| --- | --- | --- | --- | --- |',
  ...SETTINGS.map((s) => `| \`${s.env}\` | \`${s.path}\` | \`${show(s.default)}\` | ${cell(s.unit)} | ${cell(s.reason)} |`),
  '| `CONFIG_FILE` | — | `./config/signalbox.yaml` | path | the optional YAML file with the settings above; a missing default file is fine, a missing file named here is an error |',
];
const table = rows.join('\n');
if (process.argv.includes('--write')) {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('\n', readme.indexOf('<!-- settings-table')) + 1;
  const end = readme.indexOf('<!-- /settings-table -->');
  if (start <= 0 || end === -1) throw new Error('README.md has no settings-table markers');
  writeFileSync('README.md', `${readme.slice(0, start)}${table}\n${readme.slice(end)}`);
} else {
  console.log(table);
}
