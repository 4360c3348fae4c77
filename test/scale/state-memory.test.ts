/**
 * Redis memory per tracked version and per manifest row at 10^5 of each (one tenant), on a dedicated
 * redis-server: at most 100 and 80 bytes, every bucket in listpack encoding (test/support/state-memory.ts).
 */
import { describeStateMemory } from '../support/state-memory.js';

describeStateMemory(100_000);
