/**
 * The bandwidth port: a tenant's `maxBandwidth`, one budget of bytes per second shared by every
 * transfer of that tenant in every replica. `adapters/redis-bandwidth.ts` keeps it in Redis;
 * `sync/throttle.ts` spends it as the source stream is read.
 */
export interface BandwidthLimiter {
  /**
   * Reserves `bytes` of the tenant's budget at `bytesPerSecond`. Resolves with how many milliseconds
   * the caller must wait before it reads them (0: at once). Reservations queue behind each other, so
   * the tenant's transfers together never read faster than the rate.
   */
  reserve(org: string, bytesPerSecond: number, bytes: number): Promise<number>;
}
