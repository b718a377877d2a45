#!/usr/bin/env node
// Runs the compiled CLI (npm run build first).
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv);
