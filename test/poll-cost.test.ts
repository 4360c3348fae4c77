/**
 * A poll over a backlog of queued versions costs what a no-change poll costs (test/support/poll-cost.ts).
 */
import { describePollCost } from './support/poll-cost.js';

describePollCost(5_000);
