#!/usr/bin/env node
import { main } from './main.js';

// Exit at once: a run cut short by a second signal or its budget leaves stages running.
process.exit(await main(process.argv.slice(2)));
