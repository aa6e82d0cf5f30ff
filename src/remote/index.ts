// The SSH layer: reach a GPU box with its host key pinned, run commands, move files, and run jobs detached from
// the SSH session so a watcher can drop and reconnect without losing or repeating output.
export { RemoteHost, type ConnectOptions, type ExecOptions, type ExecResult } from "./host.js";
export { ConnectionLost, HostKeyMismatch, JobLost } from "./errors.js";
export { shellQuote } from "./shell.js";
export { publicKeyFingerprint, generateKeyPair } from "./hostkey.js";
export {
  startDetached,
  pollJob,
  watchJob,
  killJob,
  type DetachedJob,
  type JobUpdate,
  type WatchOptions,
  type WatchResult,
} from "./jobs.js";
export { streamToLog, type LogStream } from "./log.js";
