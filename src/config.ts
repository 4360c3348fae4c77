/**
 * Configuration: the schema (`config/schema.ts`, each default beside its field), its building blocks
 * (`config/fields.ts`) and loading (`config/load.ts`): loaded and validated once at start, then frozen.
 */
export { parseDuration, parseSize } from './config/fields.js';
export * from './config/load.js';
export * from './config/schema.js';
export * from './config/tenant.js';
