/**
 * The demo's sample data: three tenants whose recordings get their call metadata three different
 * ways, each file with the outcome the design promises for it. Generated, never read from disk.
 *
 * - acme:    a CSV manifest (Excel-style: BOM, CRLF, quoted fields) names each recording; one row has
 *            a broken email, so the manifest gets a validation report and its recording has no call
 *            metadata: it is still checked with Vela (org_id only) and synced, marked
 *            `metadata-source: none`. Within its allocation.
 * - globex:  a JSON manifest; the tenant is over its minute allocation, so every recording is parked
 *            (allocation-exceeded) while the manifest itself is synced.
 * - initech: no manifest; email and date come from the file name (`metadata.pattern`), and a
 *            voicemail that does not match the pattern gets `defaultEmail` and its file date.
 */
import { sineWav } from '../sandbox/wav.js';
import type { AllocationSetting } from '../standin/vela-standin.js';
import type { MetadataSource, ParkedRecord } from '../types.js';

export type Expectation =
  | { kind: 'synced'; email?: string; dateOfCall?: string; source?: MetadataSource }
  | { kind: 'parked'; reason: ParkedRecord['reason'] };

export interface DemoFile {
  /** Path under the tenant's FTP home, `/`-separated. */
  path: string;
  body: Buffer;
  /** Undefined for files the tenant's include filter skips (they are never synced). */
  expect?: Expectation;
}

export interface DemoTenant {
  org: string;
  /** One line: how this tenant's calls get their metadata, and what should happen. */
  story: string;
  /** The tenant's `metadata` configuration. */
  metadata: Record<string, unknown>;
  allocation: AllocationSetting;
  files: DemoFile[];
  /** Manifest paths, with how many row errors each should report. */
  manifests: Record<string, number>;
}

const BOM = '\uFEFF';
let tone = 0;
/** A few seconds of a sine tone, a different pitch for each recording. */
const recording = (seconds: number) => sineWav({ seconds, frequency: 330 + 55 * (tone++ % 12) });

function acme(): DemoTenant {
  const csv = [
    'file,agent_email,date_of_call,notes',
    '2024-03-04/call-0001.wav,alice@acme.example,2024-03-04,"Renewal, 2 seats"',
    '2024-03-04/call-0002.wav,bob@acme.example,2024-03-04,',
    'call-0003.wav,carol@acme.example,2024-03-05,"Asked for a ""callback"" on Friday"',
    'call-0004.wav,dana.at.acme.example,2024-03-05,typo in the email: this row is rejected',
  ];
  return {
    org: 'acme',
    story: 'CSV manifest (BOM, quoted fields), one bad row; within its allocation',
    metadata: {},
    allocation: { minutes: 1200, voiceId: 'enrolled' },
    files: [
      {
        path: 'calls/2024-03-04/call-0001.wav',
        body: recording(3),
        expect: { kind: 'synced', email: 'alice@acme.example', dateOfCall: '2024-03-04', source: 'manifest' },
      },
      {
        path: 'calls/2024-03-04/call-0002.wav',
        body: recording(2),
        expect: { kind: 'synced', email: 'bob@acme.example', dateOfCall: '2024-03-04', source: 'manifest' },
      },
      {
        path: 'calls/2024-03-05/agent-c/call-0003.wav',
        body: recording(4),
        expect: { kind: 'synced', email: 'carol@acme.example', dateOfCall: '2024-03-05', source: 'manifest' },
      },
      {
        path: 'calls/2024-03-05/agent-d/call-0004.wav',
        body: recording(2),
        expect: { kind: 'synced', source: 'none' },
      },
      {
        path: 'records/calls-2024-03.csv',
        body: Buffer.from(`${BOM}${csv.join('\r\n')}\r\n`),
        expect: { kind: 'synced' },
      },
      { path: 'README.txt', body: Buffer.from('Not call data: the include filter skips it.\n') },
    ],
    manifests: { 'records/calls-2024-03.csv': 1 },
  };
}

function globex(): DemoTenant {
  const rows = [
    { recording: 'rec-1001.wav', email: 'ann@globex.example', call_date: '2024-03-05' },
    { recording: 'rec-1002.wav', email: 'raj@globex.example', call_date: '2024-03-05' },
    { recording: '2024/03/06/rec-1003.wav', email: 'ann@globex.example', call_date: '2024-03-06' },
  ];
  const parked = { kind: 'parked', reason: 'allocation-exceeded' } as const;
  return {
    org: 'globex',
    story: 'JSON manifest; over its minute allocation, so its recordings are parked',
    metadata: {},
    allocation: { status: 'exceeded', minutes: 0, voiceId: 'enrolled' },
    files: [
      { path: 'recordings/2024/03/05/rec-1001.wav', body: recording(3), expect: parked },
      { path: 'recordings/2024/03/05/rec-1002.wav', body: recording(2), expect: parked },
      { path: 'recordings/2024/03/06/rec-1003.wav', body: recording(3), expect: parked },
      {
        path: 'manifests/2024-03.json',
        body: Buffer.from(`${JSON.stringify(rows, null, 2)}\n`),
        expect: { kind: 'synced' },
      },
    ],
    manifests: { 'manifests/2024-03.json': 0 },
  };
}

function initech(): DemoTenant {
  const byName = (email: string, date: string) =>
    ({ kind: 'synced', email, dateOfCall: date, source: 'pattern' }) as const;
  return {
    org: 'initech',
    story: 'no manifest: email and date from the file name, else defaultEmail; within its allocation',
    metadata: {
      pattern: String.raw`(?<email>[^_]+)_(?<date>\d{4}-\d{2}-\d{2})_.*\.wav`,
      defaultEmail: 'frontdesk@initech.example',
    },
    allocation: { minutes: 240, shape: 'string', voiceId: 'not-enrolled' },
    files: [
      {
        path: 'voice/2024-03-05/peter.gibbons@initech.example_2024-03-05_0930.wav',
        body: recording(3),
        expect: byName('peter.gibbons@initech.example', '2024-03-05'),
      },
      {
        path: 'voice/2024-03-05/samir.n@initech.example_2024-03-05_1412.wav',
        body: recording(2),
        expect: byName('samir.n@initech.example', '2024-03-05'),
      },
      {
        path: 'voice/2024-03-06/michael.b@initech.example_2024-03-06_1105.wav',
        body: recording(4),
        expect: byName('michael.b@initech.example', '2024-03-06'),
      },
      {
        path: 'voice/voicemail/vm-0001.wav',
        body: recording(2),
        // The date is the file's modification date: today, in UTC.
        expect: { kind: 'synced', email: 'frontdesk@initech.example', source: 'defaults' },
      },
    ],
    manifests: {},
  };
}

export function buildScenario(): DemoTenant[] {
  tone = 0;
  return [acme(), globex(), initech()];
}

/** The files a tenant's poll should pick up, with what should become of them. */
export const expectedFiles = (t: DemoTenant) =>
  t.files.filter((f): f is DemoFile & { expect: Expectation } => f.expect !== undefined);
