/**
 * Runs the Vela stand-in on its own:
 *
 *   tsx src/standin/vela-standin-cli.ts --port 8080 --token T --file allocations.json
 *
 * The token may come from VELA_TOKEN instead of --token, to keep it out of the process list.
 * `--default-minutes N` answers every org not in the file with N remaining minutes.
 */
import { parseArgs } from 'node:util';
import { startVelaStandin } from './vela-standin.js';

const usage =
  'usage: vela-standin-cli [--port 8080] [--host 127.0.0.1] [--token T | env VELA_TOKEN] [--file allocations.json|yaml] [--default-minutes N]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      token: { type: 'string' },
      file: { type: 'string' },
      'default-minutes': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const token = values.token ?? process.env.VELA_TOKEN;
  const port = Number(values.port);
  const minutes = values['default-minutes'];
  if (!token) throw new Error(`a token is needed (--token or VELA_TOKEN)\n${usage}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: expected a port, got ${values.port}`);
  if (minutes !== undefined && !Number.isFinite(Number(minutes))) {
    throw new Error(`--default-minutes: expected a number, got ${minutes}`);
  }

  const standin = await startVelaStandin({
    token,
    port,
    host: values.host,
    ...(values.file !== undefined && { file: values.file }),
    ...(minutes !== undefined && { defaultAllocation: { minutes: Number(minutes) } }),
    log: (message) => console.error(message),
  });
  console.log(`vela stand-in listening on ${standin.url} (admin: ${standin.adminUrl})`);

  const stop = () => {
    void standin.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(2);
});
