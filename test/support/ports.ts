/** The harness and the demo sandbox pick ports the same way. */
export { freePort } from '../../src/sandbox/ports.js';
