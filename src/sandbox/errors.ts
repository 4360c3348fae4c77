/** A sandbox part that cannot start. Its message is one line a person can act on. */
export class SandboxError extends Error {
  override name = 'SandboxError';
}
