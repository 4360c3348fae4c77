/**
 * Looking into the bucket the way a consumer of the data would: the listing, each synced file's
 * bytes and metadata compared with its source, and the validation reports of manifests.
 */
import { createHash } from 'node:crypto';
import type { ObjectStore } from '../ports/object-store.js';
import type { ValidationReport } from '../sync/metadata/report.js';
import { type DemoTenant, expectedFiles } from './scenario.js';

export interface BucketObject {
  key: string;
  size: number;
}

export async function listBucket(store: ObjectStore): Promise<BucketObject[]> {
  const out: BucketObject[] = [];
  for await (const o of store.list('')) out.push(o);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export async function headMetadata(store: ObjectStore, key: string): Promise<Record<string, string>> {
  return (await store.head(key))?.metadata ?? {};
}

async function getBytes(store: ObjectStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.get(key)) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Checks every file expected to be synced: its object (key `{org}/{path}`) holds exactly the source's
 * bytes, and a recording carries the call metadata the scenario promises. Returns the problems found.
 */
export async function verifyObjects(
  store: ObjectStore,
  tenants: DemoTenant[],
): Promise<{ checked: number; problems: string[] }> {
  const problems: string[] = [];
  let checked = 0;
  for (const t of tenants) {
    for (const f of expectedFiles(t)) {
      if (f.expect.kind !== 'synced') continue;
      const key = `${t.org}/${f.path}`;
      try {
        const body = await getBytes(store, key);
        if (sha256(body) !== sha256(f.body)) {
          problems.push(`${key}: ${body.length} bytes in S3 differ from the ${f.body.length} source bytes`);
          continue;
        }
        const meta = await headMetadata(store, key);
        const want: Record<string, string | undefined> = {
          email: f.expect.email,
          'date-of-call': f.expect.dateOfCall,
          'metadata-source': f.expect.source,
        };
        for (const [name, value] of Object.entries(want)) {
          if (value !== undefined && meta[name] !== value) {
            problems.push(`${key}: metadata ${name} is ${JSON.stringify(meta[name])}, expected ${value}`);
          }
        }
        checked++;
      } catch (err) {
        problems.push(`${key}: ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  }
  return { checked, problems };
}

/** The validation report the daemon wrote next to a manifest's object, if there is one. */
export async function readValidationReport(
  store: ObjectStore,
  key: string,
): Promise<ValidationReport | undefined> {
  try {
    return JSON.parse((await getBytes(store, key)).toString('utf8')) as ValidationReport;
  } catch {
    return undefined;
  }
}
