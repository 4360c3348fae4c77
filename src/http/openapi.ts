/**
 * The OpenAPI 3.1 document of the upload API, generated from the zod schemas the server validates
 * with (`api-schemas.ts`), and a small HTML page that renders it without any script from elsewhere.
 */
import { z } from 'zod';
import {
  completeResponseSchema,
  ERROR_CODES,
  errorSchema,
  uploadRequestSchema,
  uploadResponseSchema,
} from './api-schemas.js';

export const UPLOAD_PATH = '/asr/async/upload/vela';

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete out.$schema;
  delete out.id;
  return out;
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

export function openApiDocument(opts: { serverUrl?: string; maxBodyBytes: number }): Record<string, unknown> {
  const request = { $ref: '#/components/schemas/UploadRequest' };
  const formRequest = {
    type: 'object',
    required: ['org_id'],
    properties: {
      org_id: { type: 'string' },
      metadata: { type: 'string', description: 'The metadata object as a JSON string.' },
      filename: { type: 'string' },
      content_type: { type: 'string' },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'ftp-sync upload API',
      version: '1',
      description:
        "Presigned uploads of call recordings for an organisation's own applications. Each request is checked with Vela (minute allocation) before anything is signed. Errors are JSON `{code, message, field?}`.",
    },
    ...(opts.serverUrl && { servers: [{ url: opts.serverUrl }] }),
    security: [{ bearer: [] }],
    paths: {
      [UPLOAD_PATH]: {
        post: {
          operationId: 'createUpload',
          summary: 'A presigned POST for one call recording (or a zip of calls)',
          description: `The fields may come as JSON (preferred), as form fields (application/x-www-form-urlencoded or multipart/form-data, \`metadata\` as a JSON string) or in the query string (org_id, metadata as JSON, filename, content_type); body fields win over query fields. Bodies above ${opts.maxBodyBytes} bytes are refused with 413.`,
          parameters: ['org_id', 'metadata', 'filename', 'content_type'].map((name) => ({
            name,
            in: 'query',
            required: false,
            schema: { type: 'string' },
          })),
          requestBody: {
            required: false,
            content: {
              'application/json': { schema: request },
              'application/x-www-form-urlencoded': { schema: formRequest },
              'multipart/form-data': { schema: formRequest },
            },
          },
          responses: {
            '200': {
              description:
                'POST `fields` and then the file (field name `file`) as multipart/form-data to `url`.',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/UploadResponse' } } },
            },
            '400': errorResponse(
              'A field is missing or malformed (`invalid_field`, `invalid_json`): `field` names it.',
            ),
            '401': errorResponse('No bearer token, or one that is unknown or revoked (`unauthorized`).'),
            '403': errorResponse(
              "`org_forbidden`: org_id is not the token's org (also for an org that does not exist: tokens cannot probe for orgs); `minute_allocation_exceeded`: the org is past its allocation, nothing was signed.",
            ),
            '413': errorResponse('The request body is too large (`body_too_large`).'),
            '415': errorResponse('A body that is neither JSON nor a form (`unsupported_media_type`).'),
            '429': errorResponse(
              'Too many requests for this org this minute (`rate_limited`); see Retry-After.',
            ),
            '502': errorResponse('Vela refused the check for this org (`vela_rejected`).'),
            '503': errorResponse(
              'Vela did not answer in time (`vela_unavailable`), or Redis is unreachable (`unavailable`); see Retry-After. Nothing was signed.',
            ),
          },
        },
      },
      [`${UPLOAD_PATH}/{id}/complete`]: {
        post: {
          operationId: 'completeUpload',
          summary: 'Optional: tell the server the POST to the store is done',
          description:
            'Records the call at once instead of at the next sweep. Without it, the sweep finds the object within `api.sweepInterval`. Idempotent: calling it again for an upload already recorded (by an earlier call or by the sweep) answers 200 with the same body, so a client may retry it freely.',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description:
                'The object was found and the call recorded, now or before (the same body every time).',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/CompleteResponse' } } },
            },
            '400': errorResponse('The object is larger than allowed (`upload_too_large`); it was deleted.'),
            '401': errorResponse('No valid bearer token.'),
            '404': errorResponse(
              "No pending or recorded upload of the token's org with this id (`upload_not_found`): unknown, expired without an object, or refused as too large.",
            ),
            '409': errorResponse(
              'Nothing was uploaded under the key yet (`object_missing`), or the upload is being recorded by another call at this moment (`completion_in_progress`, with Retry-After: call again for the 200).',
            ),
            '429': errorResponse(
              'Too many requests for this org this minute (`rate_limited`); see Retry-After.',
            ),
            '503': errorResponse('Redis is unreachable (`unavailable`); see Retry-After.'),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API token of the org (`ftp-sync tokens create --org ID`).',
        },
      },
      schemas: {
        UploadRequest: jsonSchema(uploadRequestSchema, 'input'),
        UploadResponse: jsonSchema(uploadResponseSchema, 'output'),
        CompleteResponse: jsonSchema(completeResponseSchema, 'output'),
        Error: { ...jsonSchema(errorSchema, 'output'), 'x-codes': [...ERROR_CODES] },
      },
    },
  };
}

const htmlEscape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A readable page of the document: each operation, its responses, and the schemas as JSON. */
export function docsPage(doc: Record<string, unknown>): string {
  const info = doc.info as { title: string; description: string };
  const paths = doc.paths as Record<
    string,
    Record<
      string,
      { summary: string; description?: string; responses: Record<string, { description: string }> }
    >
  >;
  const ops = Object.entries(paths)
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(
        ([method, op]) => `<section><h2><code>${method.toUpperCase()} ${htmlEscape(path)}</code></h2>
<p>${htmlEscape(op.summary)}</p>${op.description ? `<p>${htmlEscape(op.description)}</p>` : ''}
<ul>${Object.entries(op.responses)
          .map(([status, r]) => `<li><b>${status}</b> ${htmlEscape(r.description)}</li>`)
          .join('')}</ul></section>`,
      ),
    )
    .join('\n');
  const schemas = (doc.components as { schemas: unknown }).schemas;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${htmlEscape(info.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body><h1>${htmlEscape(info.title)}</h1><p>${htmlEscape(info.description)}</p>
<p>Authentication: <code>Authorization: Bearer &lt;token&gt;</code>. Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
${ops}
<h2>Schemas</h2><pre>${htmlEscape(JSON.stringify(schemas, null, 2))}</pre></body></html>`;
}
