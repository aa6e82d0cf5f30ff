// One SSH connection to a box (opened by connect.ts: retries, pinned host key), watched by keepalives so a hung
// box is noticed; commands with live output, and SFTP file transfer.
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import type { Client as SshClient, ClientChannel, SFTPWrapper } from "ssh2";
import type { SshAccess } from "../compute/types.js";
import { InfraError } from "../util/errors.js";
import { openConnection, type ConnectOptions } from "./connect.js";
import { ConnectionLost, errorText as describe } from "./errors.js";
import { envOverStdin } from "./shell.js";

export type { ConnectOptions };

export interface ExecOptions {
  /** Exported to the command; the values travel over the channel's stdin, never on a command line or in logs. */
  env?: Record<string, string>;
  stdin?: string | Buffer;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  code: number | null;
  /** Signal name without "SIG" ("KILL") when the command was killed. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

const SFTP_NO_SUCH_FILE = 2;

function shortCommand(command: string): string {
  const line = command.replace(/\s+/g, " ").trim();
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

/** What ssh2 1.x keeps behind ClientChannel.signal(); see signalChannel. */
interface ChannelInternals {
  outgoing?: { id?: number; state?: string };
  _client?: { _protocol?: { signal?: (chan: number, signal: string) => void } };
}

/**
 * Sends a "signal" request. ssh2's ClientChannel.signal() sends nothing once stdin is closed (it checks
 * `writable`), and every exec closes stdin at once, so the request goes through the protocol object it uses.
 */
function signalChannel(ch: ClientChannel, signal: string): void {
  const c = ch as unknown as ChannelInternals;
  try {
    const id = c.outgoing?.id;
    const protocol = c._client?._protocol;
    const open = c.outgoing?.state === "open" || c.outgoing?.state === "eof";
    if (open && id !== undefined && typeof protocol?.signal === "function") protocol.signal(id, signal);
    else ch.signal(signal);
  } catch {
    // The channel is already gone.
  }
}

export class RemoteHost {
  /** The server's host key, "type base64": the pinned one, or the one seen with trustOnFirstUse. */
  readonly hostKey: string;
  /** Resolves when the connection ends: undefined after close(), a ConnectionLost when it dropped. Never rejects. */
  readonly closed: Promise<Error | undefined>;
  private ending = false;
  private dropped = false;
  private sftpSession?: Promise<SFTPWrapper>;
  private readonly where: string;
  /** Requests in flight, failed at once when the connection ends (untilClosed). */
  private readonly pending = new Set<(e: Error | undefined) => void>();

  private constructor(
    private readonly client: SshClient,
    access: SshAccess,
    hostKey: string,
  ) {
    this.hostKey = hostKey;
    this.where = `${access.user}@${access.host}:${access.port}`;
    let lastError: Error | undefined;
    client.removeAllListeners("error");
    client.removeAllListeners("close");
    client.on("error", (e: Error) => (lastError = e));
    this.closed = new Promise<Error | undefined>((resolve) => {
      client.once("close", () => {
        this.dropped = true;
        this.sftpSession = undefined;
        if (this.ending && !lastError) return resolve(undefined);
        const why = lastError ? describe(lastError) : "the server closed the connection";
        resolve(new ConnectionLost(`SSH connection to ${this.where} lost: ${why}`, { cause: lastError }));
      });
    });
    void this.closed.then((e) => {
      for (const fail of this.pending) fail(e);
      this.pending.clear();
    });
  }

  static async connect(access: SshAccess, opts: ConnectOptions = {}): Promise<RemoteHost> {
    const { client, hostKey } = await openConnection(access, opts);
    return new RemoteHost(client, access, hostKey);
  }

  private fail(e: unknown, what: string): Error {
    if (e instanceof InfraError) return e;
    const message = describe(e);
    // ssh2 answers every pending SFTP request with this when the connection under it closes.
    if (this.dropped || /No response from server|Not connected/i.test(message)) {
      return new ConnectionLost(`SSH connection to ${this.where} lost during ${what}: ${message}`, { cause: e });
    }
    return new InfraError(`${what} on ${this.where} failed: ${message}`, { cause: e });
  }

  /**
   * `p`, or a ConnectionLost as soon as the connection ends first: ssh2 does not always answer a request that was
   * in flight when the connection was cut (a channel or SFTP open), and a promise left pending forever would
   * stall its caller (and let Node exit with nothing left to run).
   */
  private untilClosed<T>(p: Promise<T>, what: string): Promise<T> {
    // One listener on `closed` for all requests (see the constructor), not one per request: a watch of many hours
    // makes hundreds of thousands of them. On a connection already closed, p fails by itself (exec and sftp check).
    return new Promise<T>((resolve, reject) => {
      const onClose = (e: Error | undefined): void => reject(e ?? new ConnectionLost(`SSH connection to ${this.where} closed during ${what}`));
      this.pending.add(onClose);
      p.then(
        (v) => {
          this.pending.delete(onClose);
          resolve(v);
        },
        (e: unknown) => {
          this.pending.delete(onClose);
          reject(e);
        },
      );
    });
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    // With env, `command` may be reported only by a fixed description: callers building it may have put more there.
    const what = opts.env ? "a command" : `\`${shortCommand(command)}\``;
    return this.untilClosed(this.execOnce(command, what, opts), `running ${what}`);
  }

  private execOnce(command: string, what: string, opts: ExecOptions): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      if (this.dropped) return reject(new ConnectionLost(`SSH connection to ${this.where} is closed; cannot run ${what}`));
      let prefix = "";
      let preamble: string | undefined;
      if (opts.env && Object.keys(opts.env).length > 0) {
        const e = envOverStdin(opts.env);
        prefix = e.prefix;
        preamble = e.preamble;
      }
      // A command that may have to be stopped first reports its pid (= its process group: sshd starts each
      // session's command with setsid) on stderr; the line is taken out before the caller sees stderr.
      const stoppable = opts.timeoutMs !== undefined || opts.signal !== undefined;
      const pidMarker = `__ftune_pid_${randomBytes(6).toString("hex")}=`;
      if (stoppable) prefix += `printf '${pidMarker}%s\\n' "$$" >&2\n`;

      const onChannel = (err: Error | undefined, ch: ClientChannel): void => {
        if (err) return reject(this.fail(err, `running ${what}`));
        const outDec = new StringDecoder("utf8");
        const errDec = new StringDecoder("utf8");
        let stdout = "";
        let stderr = "";
        let exit: { code: number | null; signal: string | null } | undefined;
        let settled = false;
        let pidLine: Buffer | undefined = stoppable ? Buffer.alloc(0) : undefined;
        let remotePid: number | undefined;
        const finish = (): void => {
          settled = true;
          clearTimeout(timer);
          opts.signal?.removeEventListener("abort", onAbort);
        };
        const stop = (why: Error): void => {
          if (settled) return;
          finish();
          this.killRemote(ch, remotePid);
          // Not waiting for the channel to close: sshd keeps it open until the command is gone.
          reject(why);
        };
        const timer =
          opts.timeoutMs === undefined
            ? undefined
            : setTimeout(() => stop(new InfraError(`${what} on ${this.where} timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
        const onAbort = (): void => stop(opts.signal?.reason as Error);
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        const deliver = (s: string, sink: "out" | "err"): void => {
          if (!s || settled) return;
          if (sink === "out") stdout += s;
          else stderr += s;
          try {
            (sink === "out" ? opts.onStdout : opts.onStderr)?.(s);
          } catch (e) {
            stop(e as Error);
          }
        };
        ch.on("data", (b: Buffer) => deliver(outDec.write(b), "out"));
        ch.stderr.on("data", (b: Buffer) => {
          if (pidLine) {
            pidLine = Buffer.concat([pidLine, b]);
            const nl = pidLine.indexOf(10);
            if (nl < 0 && pidLine.length < 256) return;
            const line = pidLine.subarray(0, Math.max(nl, 0)).toString("latin1");
            b = line.startsWith(pidMarker) ? pidLine.subarray(nl + 1) : pidLine;
            if (line.startsWith(pidMarker)) remotePid = Number(line.slice(pidMarker.length));
            pidLine = undefined;
          }
          deliver(errDec.write(b), "err");
        });
        ch.on("exit", (code: number | null, sig?: string) => {
          exit = { code: code ?? null, signal: sig ? sig.replace(/^SIG/, "") : null };
        });
        ch.once("close", () => {
          if (pidLine?.length) deliver(errDec.write(pidLine), "err");
          deliver(outDec.end(), "out");
          deliver(errDec.end(), "err");
          if (settled) return;
          finish();
          // sshd killed (or the link cut) shows as a close with no exit status at all.
          if (!exit) return reject(new ConnectionLost(`SSH connection to ${this.where} lost while running ${what}`));
          resolve({ ...exit, stdout, stderr });
        });
        ch.on("error", () => undefined);
        if (preamble !== undefined) ch.write(preamble);
        if (opts.stdin !== undefined) ch.write(opts.stdin);
        // EOF, or a command that reads stdin would wait forever.
        ch.end();
      };
      try {
        this.client.exec(prefix + command, onChannel);
      } catch (e) {
        reject(this.fail(e, `running ${what}`));
      }
    });
  }

  /**
   * Best effort, in two ways: sshd's "signal" request (OpenSSH >= 7.9, refused for root logins, which run
   * without privilege separation), and a kill of the command's process group over a second channel.
   */
  private killRemote(ch: ClientChannel, pid: number | undefined): void {
    signalChannel(ch, "KILL");
    if (pid !== undefined && Number.isInteger(pid) && pid > 1) {
      this.exec(`kill -KILL -- -${pid} 2>/dev/null || kill -KILL ${pid} 2>/dev/null; true`).catch(() => undefined);
    }
    ch.close();
  }

  private sftp(): Promise<SFTPWrapper> {
    if (this.dropped) return Promise.reject(new ConnectionLost(`SSH connection to ${this.where} is closed`));
    if (!this.sftpSession) {
      const session = new Promise<SFTPWrapper>((resolve, reject) => {
        try {
          this.client.sftp((err, s) => {
            if (err) return reject(this.fail(err, "opening SFTP"));
            // One session serves every transfer; a new one is opened if this one ends.
            s.once("close", () => {
              if (this.sftpSession === session) this.sftpSession = undefined;
            });
            s.on("error", () => undefined);
            resolve(s);
          });
        } catch (e) {
          reject(this.fail(e, "opening SFTP"));
        }
      });
      session.catch(() => {
        if (this.sftpSession === session) this.sftpSession = undefined;
      });
      this.sftpSession = session;
    }
    return this.sftpSession;
  }

  private async sftpCall<T>(what: string, op: (s: SFTPWrapper, done: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    return this.untilClosed(this.sftpCallOnce(what, op), what);
  }

  private async sftpCallOnce<T>(what: string, op: (s: SFTPWrapper, done: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
    const s = await this.sftp();
    return new Promise<T>((resolve, reject) => {
      try {
        op(s, (err, value) => (err ? reject(err) : resolve(value as T)));
      } catch (e) {
        reject(e);
      }
    }).catch((e: unknown) => {
      throw this.fail(e, what);
    });
  }

  /** Uploads a local file (sftp.fastPut: parallel requests, far faster than a stream). */
  put(local: string, remote: string): Promise<void> {
    return this.sftpCall(`uploading ${local} to ${remote}`, (s, done) => s.fastPut(local, remote, (err) => done(err)));
  }

  get(remote: string, local: string): Promise<void> {
    return this.sftpCall(`downloading ${remote}`, (s, done) => s.fastGet(remote, local, (err) => done(err)));
  }

  /**
   * Writes a whole file. With mode, a new file is created with it (never readable by others in between) and an
   * existing one is switched to it.
   */
  async writeFile(remote: string, data: string | Buffer, mode?: number): Promise<void> {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const what = `writing ${remote}`;
    const handle = await this.sftpCall<Buffer>(what, (s, done) =>
      mode === undefined ? s.open(remote, "w", done) : s.open(remote, "w", { mode }, done),
    );
    try {
      if (buf.length > 0) await this.sftpCall<void>(what, (s, done) => s.write(handle, buf, 0, buf.length, 0, (err) => done(err)));
      if (mode !== undefined) await this.sftpCall<void>(what, (s, done) => s.fchmod(handle, mode, (err) => done(err)));
    } finally {
      await this.sftpCall<void>(what, (s, done) => s.close(handle, (err) => done(err))).catch(() => undefined);
    }
  }

  /** The whole file, or null when it does not exist. */
  async readFile(remote: string): Promise<Buffer | null> {
    const s = await this.untilClosed(this.sftp(), `reading ${remote}`);
    return this.untilClosed(
      new Promise<Buffer | null>((resolve, reject) => {
        s.readFile(remote, (err, data) => {
          if (!err) return resolve(data);
          if ((err as { code?: number }).code === SFTP_NO_SUCH_FILE) return resolve(null);
          reject(this.fail(err, `reading ${remote}`));
        });
      }),
      `reading ${remote}`,
    );
  }

  /**
   * Up to maxBytes of a file from byte `offset` (fewer at its end), or null when it does not exist. Reads at a
   * position, so following a growing log costs only its new bytes.
   */
  async readRange(remote: string, offset: number, maxBytes: number): Promise<Buffer | null> {
    const what = `reading ${remote}`;
    let handle: Buffer;
    try {
      handle = await this.sftpCall<Buffer>(what, (s, done) => s.open(remote, "r", done));
    } catch (e) {
      const cause = (e as { cause?: { code?: number } }).cause;
      if (!(e instanceof ConnectionLost) && cause?.code === SFTP_NO_SUCH_FILE) return null;
      throw e;
    }
    try {
      const { size } = await this.sftpCall<{ size: number }>(what, (s, done) => s.fstat(handle, done));
      const len = Math.min(Math.max(size - offset, 0), maxBytes);
      if (len === 0) return Buffer.alloc(0);
      const buf = Buffer.alloc(len);
      const got = await this.sftpCall<number>(what, (s, done) => s.read(handle, buf, 0, len, offset, (err, n) => done(err, n)));
      return buf.subarray(0, got);
    } finally {
      await this.sftpCall<void>(what, (s, done) => s.close(handle, (err) => done(err))).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.dropped) return;
    this.ending = true;
    this.client.end();
    const timer = new Promise<void>((r) => setTimeout(r, 2000).unref());
    await Promise.race([this.closed, timer]);
    if (!this.dropped) this.client.destroy();
  }
}
