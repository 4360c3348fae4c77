/**
 * s3rver (through the test harness) in a process of its own, so that its CPU is its own and can be
 * measured: it is the likeliest bottleneck on loopback. Prints one JSON line with the endpoints, then
 * answers `{type: 'usage'}` IPC messages with its CPU time, until SIGTERM or the IPC channel closes.
 */
import { startS3 } from '../test/support/s3.js';

const s3 = await startS3({ bucket: 'calls' });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await s3.stop().catch(() => {});
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
process.on('message', (m: { type?: string }) => {
  if (m?.type === 'usage') {
    process.send?.({ type: 'usage', cpu: process.cpuUsage(), maxRssKiB: process.resourceUsage().maxRSS });
  }
});
process.send?.({ type: 'ready', endpoint: s3.directEndpoint, bucket: s3.bucket });
