import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type MetadataConfig, metadataSchema } from '../src/config.js';
import { PermanentError } from '../src/errors.js';
import { type DateFormat, parseCallDate } from '../src/sync/metadata/dates.js';
import { type ManifestRow, parseManifest } from '../src/sync/metadata/manifest.js';
import { buildValidationReport, validationReportKey } from '../src/sync/metadata/report.js';
import {
  findManifestRow,
  fromPattern,
  isCallRecord,
  isRecording,
  recordingRef,
  resolveCallMetadata,
} from '../src/sync/metadata/resolve.js';
import { EncodingError } from '../src/sync/metadata/utf8.js';

const config = (over: Record<string, unknown> = {}): MetadataConfig => metadataSchema.parse(over);

/** A byte stream in small chunks, so multi-byte characters and CRLFs get split between chunks. */
function stream(content: string | Uint8Array, chunkSize = 7): Readable {
  const bytes = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

const parse = (fileName: string, content: string | Uint8Array, over: Record<string, unknown> = {}) =>
  parseManifest(stream(content), { fileName, config: config(over) });

const row = (r: ManifestRow | undefined) => r && { email: r.email, dateOfCall: r.dateOfCall, line: r.line };

describe('parseCallDate', () => {
  it.each<[string, DateFormat, string]>([
    ['2024-03-05', 'iso', '2024-03-05'],
    ['20240305', 'iso', '2024-03-05'],
    ['2024-03-05T10:00:00Z', 'iso', '2024-03-05'],
    ['2024-03-05T23:30:00-05:00', 'iso', '2024-03-06'],
    ['2024-03-05T00:30:00+0200', 'iso', '2024-03-04'],
    ['2024-03-05 10:00', 'iso', '2024-03-05'],
    ['05/03/2024', 'DD/MM/YYYY', '2024-03-05'],
    ['5.3.2024', 'DD/MM/YYYY', '2024-03-05'],
    ['05-03-2024 14:22:01', 'DD/MM/YYYY', '2024-03-05'],
    ['05032024', 'DD/MM/YYYY', '2024-03-05'],
    ['03/05/2024', 'MM/DD/YYYY', '2024-03-05'],
    ['3/5/2024 2:22 PM', 'MM/DD/YYYY', '2024-03-05'],
    ['2024/03/05', 'YYYY/MM/DD', '2024-03-05'],
    ['2024.3.5', 'YYYY/MM/DD', '2024-03-05'],
    ['29/02/2024', 'DD/MM/YYYY', '2024-02-29'],
  ])('reads %j with format %s as %s', (text, format, expected) => {
    expect(parseCallDate(text, format)).toBe(expected);
  });

  it('always accepts ISO dates, whatever the configured format, since they cannot be read two ways', () => {
    for (const format of ['DD/MM/YYYY', 'MM/DD/YYYY', 'YYYY/MM/DD'] as const) {
      expect(parseCallDate('2024-03-05', format)).toBe('2024-03-05');
    }
  });

  it.each<[string, DateFormat, RegExp]>([
    ['31/02/2024', 'DD/MM/YYYY', /February 2024 has 29 days, not 31/],
    ['29/02/2023', 'DD/MM/YYYY', /February 2023 has 28 days/],
    ['2024-13-05', 'iso', /no month 13/],
    ['13/05/2024', 'MM/DD/YYYY', /no month 13/],
    ['05/03/2024', 'iso', /ambiguous.*day\/month or month\/day/],
    ['05/03/24', 'DD/MM/YYYY', /ambiguous.*two digits/],
    ['2024/03/05', 'DD/MM/YYYY', /not in the configured format.*YYYY\/MM\/DD/],
    ['05/03-2024', 'DD/MM/YYYY', /malformed date/],
    ['yesterday', 'iso', /malformed date "yesterday": expected YYYY-MM-DD/],
    ['', 'iso', /empty/],
    ['2024-03-05T25:00:00Z', 'iso', /malformed time/],
    ['05/03/2024 10:00Z', 'DD/MM/YYYY', /malformed date/],
  ])('rejects %j with format %s', (text, format, message) => {
    expect(() => parseCallDate(text, format)).toThrow(message);
  });

  it('reads back any date written in any supported format', () => {
    const pad = (n: number, w: number, padded: boolean) => (padded ? String(n).padStart(w, '0') : String(n));
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('1000-01-01T00:00:00Z'),
          max: new Date('9999-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.constantFrom<DateFormat>('iso', 'DD/MM/YYYY', 'MM/DD/YYYY', 'YYYY/MM/DD'),
        fc.constantFrom('/', '-', '.'),
        fc.boolean(),
        fc.constantFrom('', 'T10:11:12Z', ' 10:11', ' 23:59:59.999'),
        (date, format, sep, padded, time) => {
          const iso = date.toISOString().slice(0, 10);
          const [y, m, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
          const [mm, dd] = [pad(m, 2, padded), pad(d, 2, padded)];
          const written = {
            iso: `${iso}${time}`,
            'DD/MM/YYYY': `${dd}${sep}${mm}${sep}${y}${time.replace(/Z$/, '')}`,
            'MM/DD/YYYY': `${mm}${sep}${dd}${sep}${y}${time.replace(/Z$/, '')}`,
            'YYYY/MM/DD': `${y}${sep}${mm}${sep}${dd}${time.replace(/Z$/, '')}`,
          }[format];
          expect(parseCallDate(written, format)).toBe(iso);
          expect(parseCallDate(iso, format)).toBe(iso);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('parseManifest: CSV and TSV', () => {
  it('reads a CSV with a BOM, quoted commas, an embedded CRLF and CRLF line endings', async () => {
    const csv = [
      '\uFEFFFile,Email,Date_of_Call,Notes',
      '"a,1.wav",ann@acme.example,2024-03-05,"said ""hi"", then left"',
      '',
      'b.wav,bob@acme.example,2024-03-06,"two',
      'lines"',
      'c.wav,,2024-03-07,missing email on line 6',
      'é.wav,eve@acme.example,2024-03-08,',
      '',
    ].join('\r\n');
    const result = await parse('calls.csv', csv);
    expect(result.rowCount).toBe(4);
    expect(row(result.rows.get('a,1.wav'))).toEqual({
      email: 'ann@acme.example',
      dateOfCall: '2024-03-05',
      line: 2,
    });
    expect(row(result.rows.get('b.wav'))).toEqual({
      email: 'bob@acme.example',
      dateOfCall: '2024-03-06',
      line: 4,
    });
    expect(result.rows.get('é.wav')?.line).toBe(7);
    expect(result.errors).toEqual([{ line: 6, field: 'Email', message: 'missing email' }]);
    expect(result.complete).toBe(true);
  });

  it('reads a TSV, and a CSV with the delimiter set in the configuration', async () => {
    const tsv = 'recording\tagent_email\tcall_date\nx.mp3\tx@acme.example\t2024-01-02\n';
    const a = await parse('calls.tsv', tsv);
    expect(row(a.rows.get('x.mp3'))).toEqual({ email: 'x@acme.example', dateOfCall: '2024-01-02', line: 2 });
    const b = await parse('calls.csv', 'file;email;date\ny.wav;y@acme.example;2024-01-03\n', {
      delimiter: ';',
    });
    expect(b.rows.get('y.wav')?.email).toBe('y@acme.example');
  });

  it('matches configured column names, trimmed and case-insensitively', async () => {
    const csv = ' Aufnahme ,MITARBEITER, Datum \nr.wav,r@acme.example,05.03.2024\n';
    const result = await parse('calls.csv', csv, {
      columns: { file: ['aufnahme'], email: ['mitarbeiter'], date: ['datum'] },
      dateFormat: 'DD/MM/YYYY',
    });
    expect(row(result.rows.get('r.wav'))).toEqual({
      email: 'r@acme.example',
      dateOfCall: '2024-03-05',
      line: 2,
    });
  });

  it('puts bad rows in the errors with their line and field, and keeps the good rows', async () => {
    const csv = [
      'file,email,date_of_call',
      'good1.wav,g1@acme.example,2024-03-05',
      'nomail.wav,,2024-03-05',
      'badmail.wav,not-an-email,2024-03-05',
      'baddate.wav,d@acme.example,2024-3-5x',
      'feb.wav,f@acme.example,2024-02-31',
      'short.wav,s@acme.example',
      'notes.txt,n@acme.example,2024-03-05',
      'good1.wav,other@acme.example,2024-03-05',
      'good1.wav,g1@acme.example,2024-03-05',
      'good2.wav,g2@acme.example,2024-03-06',
    ].join('\n');
    const result = await parse('calls.csv', csv);
    expect([...result.rows.keys()]).toEqual(['good1.wav', 'good2.wav']);
    expect(result.rows.get('good2.wav')?.line).toBe(11);
    expect(result.rowCount).toBe(10);
    const byLine = result.errors.map((e) => [e.line, e.field, e.message]);
    expect(byLine).toEqual([
      [3, 'email', 'missing email'],
      [4, 'email', 'not an email address'],
      [5, 'date_of_call', expect.stringMatching(/malformed date "2024-3-5x"/)],
      [6, 'date_of_call', expect.stringMatching(/February 2024 has 29 days, not 31/)],
      [7, undefined, 'the row has 2 fields, the header has 3'],
      [8, 'file', expect.stringMatching(/not a recording file name/)],
      [9, 'file', expect.stringMatching(/already has a row at line 2 with a different email or date/)],
    ]);
    expect(result.errors[1]?.value).toBe('not-an-email');
    expect(result.errorCount).toBe(7);
  });

  it('refuses a header without the needed columns, naming the expected column names', async () => {
    const attempt = parse('calls.csv', 'name,mail\na.wav,a@acme.example\n');
    await expect(attempt).rejects.toBeInstanceOf(PermanentError);
    await expect(parse('calls.csv', 'name,mail\n')).rejects.toThrow(
      /calls\.csv: the header has no recording column \(metadata\.columns\.file: file, recording, filename, file_name, recording_file\), no email column \(metadata\.columns\.email: email, agent_email, agent\) and no date of call column \(metadata\.columns\.date: date_of_call, call_date, date\); found "name", "mail"$/,
    );
  });

  it('suggests the delimiter when the header reads as one column', async () => {
    await expect(parse('calls.csv', 'file;email;date\n')).rejects.toThrow(/is the delimiter ";"\?/);
  });

  it('keeps the rows before a CSV syntax error and reports where it is', async () => {
    const csv =
      'file,email,date\r\na.wav,a@acme.example,2024-03-05\r\n\r\n"b.wav,b@acme.example,2024-03-06\r\nc.wav,c@x.example,2024-03-07\r\n';
    const result = await parse('calls.csv', csv);
    expect([...result.rows.keys()]).toEqual(['a.wav']);
    expect(result.complete).toBe(false);
    expect(result.errors).toEqual([
      {
        line: 4,
        message: 'malformed CSV: a quoted field is never closed; the rest of the file was not read',
      },
    ]);
  });

  it('keeps every row before a syntax error, even rows the parser read in the same chunk', async () => {
    const lines = ['file,email,date'];
    for (let i = 0; i < 2000; i++) lines.push(`r${i}.wav,a@acme.example,2024-03-05`);
    lines.push('"runaway,a@acme.example,2024-03-05');
    for (let i = 0; i < 8000; i++) lines.push(`late${i}.wav,a@acme.example,2024-03-05`);
    const text = lines.join('\n');
    const result = await parseManifest(Readable.from([Buffer.from(text)]), {
      fileName: 'calls.csv',
      config: config(),
    });
    expect(result.rows.size).toBe(2000);
    expect(result.complete).toBe(false);
    expect(result.errors).toEqual([{ line: 2002, message: expect.stringMatching(/a row is longer than/) }]);
  });

  it('reads a file that mixes CRLF, LF and CR line endings line by line', async () => {
    const csv =
      'file,email,date\r\na.wav,a@acme.example,2024-03-05\nb.wav,b@acme.example,2024-03-06\rc.wav,,x\r\n';
    const result = await parse('calls.csv', csv);
    expect([...result.rows.values()].map((r) => [r.file, r.line])).toEqual([
      ['a.wav', 2],
      ['b.wav', 3],
    ]);
    expect(result.errors.map((e) => e.line)).toEqual([4, 4]);
  });

  it('refuses a file that is not UTF-8, naming the byte offset', async () => {
    const head = Buffer.from('file,email,date\nJos');
    const latin1 = Buffer.concat([
      head,
      Buffer.from([0xe9]),
      Buffer.from('.wav,j@acme.example,2024-03-05\n'),
    ]);
    const attempt = parse('calls.csv', latin1);
    await expect(attempt).rejects.toBeInstanceOf(EncodingError);
    await expect(parse('calls.csv', latin1)).rejects.toThrow(
      `calls.csv: not valid UTF-8 at byte ${head.length}`,
    );
    // A file cut inside a character.
    const cut = Buffer.concat([Buffer.from('file,email,date\n'), Buffer.from('é').subarray(0, 1)]);
    await expect(parse('calls.csv', cut)).rejects.toThrow('not valid UTF-8 at byte 16');
  });

  it('reads multi-byte characters split between chunks', async () => {
    const csv = 'file,email,date\nçàé€😀.wav,a@acme.example,2024-03-05\n';
    for (const size of [1, 2, 3, 5]) {
      const result = await parseManifest(stream(csv, size), { fileName: 'calls.csv', config: config() });
      expect([...result.rows.keys()]).toEqual(['çàé€😀.wav']);
    }
  });
});

describe('parseManifest: JSON', () => {
  it('reads a JSON array of objects with the line of each object', async () => {
    const json = `[
      { "file": "a.wav", "email": "a@acme.example", "date_of_call": "2024-03-05" },
      {
        "Recording": "b.wav",
        "Agent_Email": "b@acme.example",
        "call_date": "2024-03-06"
      },
      { "file": "c.wav", "email": "c@acme.example", "date_of_call": "31/02/2024" },
      "not an object",
      { "file": "d.wav", "email": ["d@acme.example"], "date": "2024-03-07" }
    ]`;
    const result = await parse('calls.json', json);
    expect(row(result.rows.get('a.wav'))).toEqual({
      email: 'a@acme.example',
      dateOfCall: '2024-03-05',
      line: 2,
    });
    expect(row(result.rows.get('b.wav'))).toEqual({
      email: 'b@acme.example',
      dateOfCall: '2024-03-06',
      line: 3,
    });
    expect(result.errors.map((e) => [e.line, e.field, e.message])).toEqual([
      [8, 'date_of_call', expect.stringMatching(/"31\/02\/2024" is not in the configured format/)],
      [9, undefined, 'expected a JSON object'],
      [10, 'email', 'email must be text'],
    ]);
    expect(result.rowCount).toBe(5);
  });

  it('reads JSON Lines, from .jsonl files and from .json files that start with an object', async () => {
    const lines = [
      '{"file":"a.wav","email":"a@acme.example","date":"2024-03-05"}',
      '',
      '{"file":"b.wav","email":"b@acme.example","date":"2024-03-06"}',
      '{"file":"c.wav",',
      '{"file":"d.wav","email":"d@acme.example","date":"2024-03-07"}',
    ].join('\r\n');
    for (const name of ['calls.jsonl', 'calls.ndjson', 'calls.json']) {
      const result = await parse(name, lines);
      expect([...result.rows.values()].map((r) => [r.file, r.line])).toEqual([
        ['a.wav', 1],
        ['b.wav', 3],
        ['d.wav', 5],
      ]);
      expect(result.errors).toEqual([
        { line: 4, message: expect.stringMatching(/^not valid JSON/), value: '{"file":"c.wav",' },
      ]);
    }
  });

  it('refuses a .json file that is neither an array nor JSON Lines', async () => {
    const pretty = '{\n  "calls": []\n}\n';
    await expect(parse('calls.json', pretty)).rejects.toThrow(
      /calls\.json: neither a JSON array of objects nor JSON Lines/,
    );
    await expect(parse('calls.json', '[{"file": "a.wav",\n}]')).rejects.toThrow(
      /calls\.json: not valid JSON/,
    );
  });

  it('refuses a JSON array over 64 MiB, and reports an overlong JSON Lines line as a row error', async () => {
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    const big = Readable.from([Buffer.from('['), ...Array.from({ length: 65 }, () => mib), Buffer.from(']')]);
    await expect(parseManifest(big, { fileName: 'calls.json', config: config() })).rejects.toThrow(
      /calls\.json: a JSON array manifest may be at most 64 MiB; write larger ones as JSON Lines/,
    );
    const long = `{"file":"${'x'.repeat(1024 * 1024)}.wav"}\n{"file":"a.wav","email":"a@acme.example","date":"2024-03-05"}\n`;
    const result = await parseManifest(stream(long, 64 * 1024), {
      fileName: 'calls.jsonl',
      config: config(),
    });
    expect([...result.rows.keys()]).toEqual(['a.wav']);
    expect(result.errors).toEqual([{ line: 1, message: 'the line is longer than 1048576 characters' }]);
  });

  it('reads an empty file as a manifest without rows', async () => {
    for (const name of ['calls.csv', 'calls.json', 'calls.jsonl']) {
      const result = await parse(name, '');
      expect(result).toMatchObject({ rowCount: 0, errors: [], complete: true });
    }
  });
});

describe('recording names in manifests', () => {
  it('normalises names to NFC and paths to /-separated tails', () => {
    expect(recordingRef('  Jose\u0301.wav ')).toEqual({ key: 'José.wav' });
    expect(recordingRef('/calls/2024/a.wav')).toEqual({ key: 'calls/2024/a.wav' });
    expect(recordingRef('.\\2024\\a.wav')).toEqual({ key: '2024/a.wav' });
    expect(recordingRef('C:\\Recorder\\a.wav')).toEqual({ key: 'a.wav' });
    expect(recordingRef('../a.wav')).toEqual({ error: expect.stringMatching(/\.\./) });
    expect(recordingRef('a.txt')).toEqual({ error: expect.stringMatching(/not a recording/) });
  });

  it('finds a row by file name, or by path when the row names a directory', () => {
    const mk = (file: string, email: string): ManifestRow => ({
      file,
      email,
      dateOfCall: '2024-03-05',
      line: 1,
      manifest: 'm.csv',
    });
    const rows = new Map([
      ['0001.wav', mk('0001.wav', 'any@acme.example')],
      ['2024-03-05/0002.wav', mk('2024-03-05/0002.wav', 'day5@acme.example')],
      ['2024-03-06/0002.wav', mk('2024-03-06/0002.wav', 'day6@acme.example')],
      ['José.wav', mk('José.wav', 'jose@acme.example')],
    ]);
    expect(findManifestRow(rows, 'calls/x/0001.wav')?.email).toBe('any@acme.example');
    expect(findManifestRow(rows, 'calls/2024-03-06/0002.wav')?.email).toBe('day6@acme.example');
    expect(findManifestRow(rows, 'calls/2024-03-07/0002.wav')).toBeUndefined();
    expect(findManifestRow(rows, 'calls/Jose\u0301.wav')?.email).toBe('jose@acme.example');
  });

  it('tells recordings and call-record files apart by extension', () => {
    expect(isRecording('calls/A.WAV')).toBe(true);
    expect(isRecording('calls/a.csv')).toBe(false);
    expect(isCallRecord('calls/a.ndjson')).toBe(true);
    expect(isCallRecord('calls/a.mp3')).toBe(false);
  });
});

describe('resolveCallMetadata', () => {
  const pattern = String.raw`^(?<email>[^_]+@[^_]+)_(?<date>\d{4}-\d{2}-\d{2})_`;
  const mtime = new Date('2024-06-01T23:30:00Z');
  const manifestRow: ManifestRow = {
    file: 'x.wav',
    email: 'm@acme.example',
    dateOfCall: '2024-01-01',
    line: 2,
    manifest: 'calls.csv',
  };

  it('reads email and date from the file name with named groups', () => {
    const c = config({ pattern });
    expect(fromPattern('calls/ann@acme.example_2024-03-05_001.wav', c)).toEqual({
      email: 'ann@acme.example',
      dateOfCall: '2024-03-05',
    });
    expect(fromPattern('calls/other.wav', c)).toBeUndefined();
    expect(fromPattern('ann@acme.example_2024-02-30_1.wav', c)).toEqual({
      error: expect.stringMatching(/February 2024 has 29 days/),
    });
    const dmy = config({ pattern: String.raw`_(?<date>\d{8})\.`, dateFormat: 'DD/MM/YYYY' });
    expect(fromPattern('rec_05032024.wav', dmy)).toEqual({ dateOfCall: '2024-03-05' });
  });

  it('takes a manifest row first, then the file name, then the defaults', () => {
    const c = config({ pattern, defaultEmail: 'desk@acme.example' });
    const path = 'calls/ann@acme.example_2024-03-05_001.wav';
    expect(resolveCallMetadata({ path, mtime, manifestRow, config: c })).toEqual({
      ok: true,
      metadata: { email: 'm@acme.example', dateOfCall: '2024-01-01', source: 'manifest' },
    });
    expect(resolveCallMetadata({ path, mtime, config: c })).toEqual({
      ok: true,
      metadata: { email: 'ann@acme.example', dateOfCall: '2024-03-05', source: 'pattern' },
    });
    expect(resolveCallMetadata({ path: 'calls/0001.wav', mtime, config: c })).toEqual({
      ok: true,
      metadata: { email: 'desk@acme.example', dateOfCall: '2024-06-01', source: 'defaults' },
    });
  });

  it('fills what the file name does not give from the defaults', () => {
    const c = config({
      pattern: String.raw`^(?<date>\d{4}-\d{2}-\d{2})_`,
      defaultEmail: 'desk@acme.example',
    });
    expect(resolveCallMetadata({ path: 'calls/2024-03-05_1.wav', mtime, config: c })).toEqual({
      ok: true,
      metadata: { email: 'desk@acme.example', dateOfCall: '2024-03-05', source: 'pattern' },
    });
  });

  it('goes on with nothing known when nothing gives an email or a date (metadata is optional)', () => {
    expect(resolveCallMetadata({ path: 'a.wav', mtime, config: config() })).toEqual({
      ok: true,
      metadata: { source: 'none' },
    });
    // The modification date is a default only with the tenant's defaults (or dateFromMtime).
    expect(resolveCallMetadata({ path: 'a.wav', mtime, config: config({ dateFromMtime: true }) })).toEqual({
      ok: true,
      metadata: { dateOfCall: '2024-06-01', source: 'partial' },
    });
    expect(
      resolveCallMetadata({ path: 'a.wav', config: config({ defaultEmail: 'desk@acme.example' }) }),
    ).toEqual({ ok: true, metadata: { email: 'desk@acme.example', source: 'partial' } });
    expect(
      resolveCallMetadata({
        path: 'a.wav',
        mtime,
        config: config({ defaultEmail: 'desk@acme.example', dateFromMtime: false }),
      }),
    ).toEqual({ ok: true, metadata: { email: 'desk@acme.example', source: 'partial' } });
  });

  it('does not fall back to the defaults for a field the file name gives with a bad value', () => {
    const c = config({ pattern, defaultEmail: 'desk@acme.example' });
    const r = resolveCallMetadata({ path: 'ann@acme.example_2024-13-01_1.wav', mtime, config: c });
    // The whole match is distrusted: neither its email nor the defaults are used for the bad field.
    expect(r).toEqual({
      ok: true,
      metadata: { source: 'none' },
      warning: expect.stringMatching(/no month 13/),
    });
  });

  it('with requireManifest, waits for a manifest row whatever the file name and defaults say', () => {
    const c = config({ pattern, defaultEmail: 'desk@acme.example', requireManifest: true });
    const path = 'ann@acme.example_2024-03-05_001.wav';
    expect(resolveCallMetadata({ path, mtime, config: c })).toEqual({
      ok: false,
      reason: 'missing-metadata',
      detail: 'waiting for a manifest row',
    });
    expect(resolveCallMetadata({ path, mtime, manifestRow, config: c })).toMatchObject({
      ok: true,
      metadata: { source: 'manifest' },
    });
  });
});

describe('buildValidationReport', () => {
  it('summarises a manifest for <key>.errors.json', async () => {
    const result = await parse(
      'calls.csv',
      'file,email,date\na.wav,a@acme.example,2024-03-05\nb.wav,,2024-03-05\n',
    );
    const report = buildValidationReport('calls/calls.csv', result, new Date('2024-03-05T10:00:00Z'));
    expect(report).toEqual({
      file: 'calls/calls.csv',
      rows: 2,
      accepted: 1,
      errorCount: 1,
      errors: [{ line: 3, field: 'email', message: 'missing email' }],
      complete: true,
      generatedAt: '2024-03-05T10:00:00.000Z',
    });
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    expect(validationReportKey('acme/calls/calls.csv')).toBe('acme/calls/calls.csv.errors.json');
  });
});
