/**
 * The upload API's request and response schemas (zod): the server validates with them and the
 * OpenAPI document (`/openapi.json`) is generated from them, so the documentation is the code.
 */
import { z } from 'zod';
import { ORG_PATTERN } from '../config.js';
import { hasUnsafeChars } from '../sync/key.js';
import { parseCallDate } from '../sync/metadata/dates.js';

/** An email as Vela takes it: one `@`, no spaces, a dot in the domain. */
const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

const metadataSchema = z
  .strictObject({
    email: z
      .string({ error: 'expected a string' })
      .trim()
      .max(254)
      .regex(EMAIL, { error: (iss) => `expected an email address, got ${JSON.stringify(iss.input)}` })
      .optional()
      .meta({ description: "The agent's email address.", example: 'jane@acme.example' }),
    date_of_call: z
      .string({ error: 'expected a string' })
      .trim()
      .transform((v, ctx) => {
        try {
          return parseCallDate(v, 'iso');
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
          return z.NEVER;
        }
      })
      .optional()
      .meta({
        description: 'The date of the call, YYYY-MM-DD (an ISO 8601 timestamp is taken as its UTC date).',
        example: '2024-03-05',
      }),
  })
  .meta({ description: 'Call metadata; each field optional, sent to Vela only when given.' });

export const uploadRequestSchema = z
  .strictObject({
    org_id: z
      .string({ error: (iss) => (iss.input === undefined ? 'required' : 'expected a string') })
      .regex(ORG_PATTERN, { error: 'expected lower-case letters, digits, - and _' })
      .meta({ description: 'The organisation the call belongs to: the one of the bearer token.' }),
    metadata: metadataSchema.optional(),
    filename: z
      .string({ error: 'expected a string' })
      .min(1)
      .max(200)
      .refine((v) => !v.includes('/') && !v.includes('\\') && v !== '.' && v !== '..' && !hasUnsafeChars(v), {
        error: 'expected a file name without /, \\, control characters, "." or ".."',
      })
      .optional()
      .meta({
        description:
          'The file name; the object key ends with it (default `recording`). A name ending in `.zip` is a batch of calls.',
        example: 'call-0001.wav',
      }),
    content_type: z
      .string({ error: 'expected a string' })
      .regex(/^[\w.+-]+\/[\w.+-]+$/, { error: 'expected a media type such as audio/wav' })
      .optional()
      .meta({
        description: 'The Content-Type the upload must carry (pinned in the policy).',
        example: 'audio/wav',
      }),
  })
  .meta({ title: 'UploadRequest' });

export const uploadResponseSchema = z
  .strictObject({
    url: z.string().meta({ description: 'Where to POST the form (multipart/form-data).' }),
    fields: z.record(z.string(), z.string()).meta({
      description:
        'Form fields to send, as given, before the file (`file`): key, policy, x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-security-token (temporary credentials only), x-amz-signature, and the signed content-type and x-amz-meta-* fields.',
    }),
    upload_id: z.string().meta({ description: 'For `POST /asr/async/upload/vela/{id}/complete`.' }),
    key: z.string().meta({ description: "The object key, under the org's prefix." }),
    expires_at: z.string().meta({ description: 'When the signature stops working (ISO 8601).' }),
    max_size: z.number().int().meta({ description: 'The largest file the policy allows, in bytes.' }),
    voice_id: z.string().meta({ description: "Vela's voice_id status for this call." }),
  })
  .meta({ title: 'UploadResponse' });

export const completeResponseSchema = z
  .strictObject({
    status: z.literal('completed'),
    key: z.string(),
    size: z.number().int(),
  })
  .meta({ title: 'CompleteResponse' });

export const ERROR_CODES = [
  'unauthorized',
  'org_forbidden',
  'invalid_json',
  'invalid_field',
  'unsupported_media_type',
  'body_too_large',
  'rate_limited',
  'minute_allocation_exceeded',
  'vela_unavailable',
  'vela_rejected',
  'unavailable',
  'upload_not_found',
  'object_missing',
  'completion_in_progress',
  'upload_too_large',
  'not_found',
  'internal',
] as const;

export const errorSchema = z
  .strictObject({
    code: z.enum(ERROR_CODES).meta({ description: 'Stable; clients switch on it.' }),
    message: z.string().meta({ description: 'For humans; names the field at fault.' }),
    field: z.string().optional().meta({ description: 'The request field at fault, when one is.' }),
  })
  .meta({ title: 'Error' });

export type ApiErrorBody = z.output<typeof errorSchema>;
