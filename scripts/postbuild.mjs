#!/usr/bin/env node
// After `tsc -b`: tsc writes files without the execute bit, but the `switchyard` bin must be
// executable for `npx switchyard` / `npm exec switchyard` in this repository (npm sets the bit
// itself only when it installs the package as a dependency).
import { chmodSync } from 'node:fs';

chmodSync('dist/src/cli/switchyard.js', 0o755);
