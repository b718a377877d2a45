#!/usr/bin/env node
// Runs the compiled CLI (npm run build first; the published package ships dist/).
import { main } from '../dist/src/cli/main.js';

// process.exit, not exitCode: a run that stopped waiting (a cancelled CI job) must not linger
// on a long poll the closed connection has not ended yet.
process.exit(await main(process.argv));
