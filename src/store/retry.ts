// Retries with exponential backoff and full jitter for what a long transfer meets on the way: 5xx, S3's SlowDown
// and other throttling, connection resets and timeouts. Client errors (403, 404, bad request) fail at once.

export interface RetryOptions {
  attempts?: number;
  baseMs?: number;
  capMs?: number;
  /** Called before each wait, e.g. to log "retrying part 12 after SlowDown". */
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  signal?: AbortSignal;
}

const RETRYABLE_CODES = new Set([
  "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeoutException", "Throttling",
  "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled",
  "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete", "TimeoutError", "IncompleteBody",
]);
const RETRYABLE_NET = new Set([
  "ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ESOCKETTIMEDOUT", "EAI_AGAIN", "ENOTFOUND", "ECONNABORTED",
  "EHOSTUNREACH", "ENETUNREACH", "ERR_STREAM_PREMATURE_CLOSE", "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CLOSED",
]);

interface ErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  cause?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  status?: number;
  retryable?: boolean;
}

/** Marks an error (e.g. a short read) as worth retrying. */
export class TransientError extends Error {
  readonly retryable = true;
}

export function isRetryable(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== "object" || depth > 4) return false;
  const err = e as ErrorLike;
  if (err.name === "AbortError") return false;
  if (err.retryable === true || err.$retryable) return true;
  const status = err.$metadata?.httpStatusCode ?? err.status;
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  for (const c of [err.name, err.code, err.Code]) if (c && (RETRYABLE_CODES.has(c) || RETRYABLE_NET.has(c))) return true;
  if (/socket hang up|aborted|premature close|other side closed|terminated|ECONNRESET|EPIPE|timed? ?out/i.test(err.message ?? "")) return true;
  return isRetryable(err.cause, depth + 1);
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

export async function withRetry<T>(op: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { attempts = 6, baseMs = 250, capMs = 15_000 } = opts;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (e) {
      if (attempt >= attempts || !isRetryable(e) || opts.signal?.aborted) throw e;
      const waitMs = Math.round(Math.random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
      opts.onRetry?.(e, attempt, waitMs);
      await sleep(waitMs, opts.signal);
    }
  }
}
