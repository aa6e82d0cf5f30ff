// Error classes of the SSH layer. All are InfraError (exit code 2): the network or the box failed, not the config.
import { InfraError } from "../util/errors.js";

/** The SSH connection dropped (sshd died, network gone, keepalive timed out) before an operation finished. */
export class ConnectionLost extends InfraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    // InfraError fixes `name` as a readonly field initializer; define over it so logs say which failure this was.
    Object.defineProperty(this, "name", { value: "ConnectionLost" });
  }
}

/** The server presented a host key other than the pinned one: possibly a different machine, never trusted. */
export class HostKeyMismatch extends InfraError {
  constructor(
    message: string,
    readonly expectedFingerprint: string,
    readonly actualFingerprint: string,
  ) {
    super(message);
    Object.defineProperty(this, "name", { value: "HostKeyMismatch" });
  }
}

/** A detached job's process is gone and it left no exit status: the box rebooted or the job was killed -9. */
export class JobLost extends InfraError {
  readonly exitCode = null;
  constructor(
    message: string,
    readonly jobId: string,
    /** Log offset up to which output was delivered. */
    readonly offset: number,
    readonly reconnects: number,
  ) {
    super(message);
    Object.defineProperty(this, "name", { value: "JobLost" });
  }
}

/** An error's message with its code (ECONNREFUSED...) when the message does not already say it. */
export function errorText(e: unknown): string {
  const err = e as { message?: string; code?: string | number } | undefined;
  const code = typeof err?.code === "string" && !err.message?.includes(err.code) ? ` (${err.code})` : "";
  return `${err?.message ?? String(e)}${code}`;
}
