import type { AllocationAnswer } from '../types.js';

/** One allocation check. `email` and `dateOfCall` only when known: Vela receives only known fields. */
export interface AllocationRequest {
  org: string;
  email?: string;
  /** YYYY-MM-DD */
  dateOfCall?: string;
}

/**
 * Vela's minute-allocation check. Throws `PermanentError` for a misconfigured tenant (4xx other than
 * 429) or an answer that cannot be understood; any other error is transient and retried.
 */
export interface AllocationCheck {
  check(req: AllocationRequest, signal?: AbortSignal): Promise<AllocationAnswer>;
}
