/**
 * A poll over a backlog of 100,000 queued versions costs what a no-change poll of 100,000 files costs
 * (test/support/poll-cost.ts).
 */
import { describePollCost } from '../support/poll-cost.js';

describePollCost(100_000);
