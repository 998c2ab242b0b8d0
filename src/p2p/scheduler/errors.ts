// Typed errors of the scheduler. The HTTP layer maps `status` and `code` to a JSON body
// ({error, detail}); callers branch on `code`, never on message text.

export type SchedulerErrorCode =
  /** A request body or path parameter failed validation. */
  | 'BAD_REQUEST'
  /** Missing or wrong cluster token. */
  | 'UNAUTHORIZED'
  /** Only a registered, live seed may publish a piece manifest. */
  | 'NOT_A_SEED'
  /** The manifest is internally inconsistent (piece count does not match size / pieceSize). */
  | 'MANIFEST_INVALID'
  /** A different manifest was already accepted for this digest; the first valid one wins. */
  | 'MANIFEST_CONFLICT'
  | 'TASK_UNKNOWN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INTERNAL';

const defaultStatus: Record<SchedulerErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_A_SEED: 403,
  MANIFEST_INVALID: 400,
  MANIFEST_CONFLICT: 409,
  TASK_UNKNOWN: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
};

export class SchedulerError extends Error {
  readonly code: SchedulerErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(code: SchedulerErrorCode, message: string, opts: { status?: number; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'SchedulerError';
    this.code = code;
    this.status = opts.status ?? defaultStatus[code];
    this.headers = opts.headers ?? {};
  }

  /** The wire form: `error` is the stable code, `detail` the human-readable reason. */
  toBody(): { error: SchedulerErrorCode; detail: string } {
    return { error: this.code, detail: this.message };
  }
}

export const isSchedulerError = (e: unknown, code?: SchedulerErrorCode): e is SchedulerError =>
  e instanceof SchedulerError && (code === undefined || e.code === code);
