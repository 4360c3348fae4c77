/**
 * Crash safety for multipart uploads on any store: each open multipart upload is recorded when it
 * is created and forgotten when it is completed or aborted, so the ones a dead process left open
 * can be aborted by id, also on stores that cannot list multipart uploads.
 */
export interface UploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  /** Epoch ms of CreateMultipartUpload. */
  startedAt: number;
  /** The process that created it (see `UploadRecords.owner`). */
  owner: string;
  /** Bytes the store confirmed so far (parts answered). */
  bytes: number;
  /**
   * The source version being uploaded (`size:mtime`) and the part size: a retry of the same version
   * resumes the upload (`ObjectStore.resumable`). Absent: not resumable.
   */
  version?: string;
  partSize?: number;
}

export interface UploadRecords {
  /** This process's id; its uploads are not aborted by others while it is alive. */
  readonly owner: string;
  /** Records an upload just created (by this process). */
  add(rec: Omit<UploadRecord, 'owner' | 'bytes'>): Promise<void>;
  /**
   * Makes an upload recorded by a process that is gone this process's own (a retry resumes it), so
   * no other process's cleanup aborts it while it continues here.
   */
  adopt(uploadId: string): Promise<void>;
  /** Adds `bytes` the store confirmed for the upload. */
  progress(uploadId: string, bytes: number): Promise<void>;
  /** Forgets an upload (completed or aborted). */
  remove(uploadId: string): Promise<void>;
  list(): Promise<UploadRecord[]>;
  /** Whether the process `owner` is still alive (its lease is renewed). */
  alive(owner: string): Promise<boolean>;
  /** Stops renewing this process's lease and drops it (a clean exit). */
  close(): Promise<void>;
}
