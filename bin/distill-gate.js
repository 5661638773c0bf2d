#!/usr/bin/env node
// The CLI runs the compiled library in lib/ (built by `npm install`'s prepare step).
import '../lib/cli/index.js';
