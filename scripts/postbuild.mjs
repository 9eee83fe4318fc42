#!/usr/bin/env node
// After `tsc -b`: tsc writes files without the execute bit, but the `signalbox` bin must be
// executable for `npx --no-install signalbox` / `npm exec signalbox` in this repository (npm sets the bit
// itself only when it installs the package as a dependency).
import { chmodSync } from 'node:fs';

chmodSync('dist/src/cli/signalbox.js', 0o755);
