// OpenSSH public host keys: parse the pinned "type base64" form, fingerprint it like ssh-keygen -l, and pick the
// host key algorithms to offer so a server with several keys presents the pinned one.
import { createHash } from "node:crypto";
import ssh2 from "ssh2";
import type { ServerHostKeyAlgorithm } from "ssh2";
import { UserError } from "../util/errors.js";

const { utils } = ssh2;

export interface PublicKey {
  type: string;
  /** The wire-format key blob (what the server sends, and what ssh2's hostVerifier receives). */
  blob: Buffer;
}

/** The key type embedded at the start of a blob (uint32 length + name). */
function blobType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return null;
  return blob.subarray(4, 4 + len).toString("latin1");
}

export function parsePublicKey(text: string): PublicKey {
  const [type, b64] = text.trim().split(/\s+/);
  const blob = b64 ? Buffer.from(b64, "base64") : Buffer.alloc(0);
  if (!type || !b64 || blobType(blob) !== type) {
    throw new UserError(`not an OpenSSH public host key (expected "ssh-ed25519 AAAA..."): ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { type, blob };
}

export function formatPublicKey(blob: Buffer): string {
  return `${blobType(blob) ?? "unknown"} ${blob.toString("base64")}`;
}

/** "SHA256:..." exactly as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export function hostKeyAlgorithms(type: string): ServerHostKeyAlgorithm[] | undefined {
  switch (type) {
    case "ssh-ed25519":
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521":
      return [type];
    case "ssh-rsa":
      // An RSA key is one key whatever the signature hash.
      return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
    default:
      return undefined;
  }
}

/** Fingerprint of an OpenSSH public key line ("ssh-ed25519 AAAA..."). */
export function publicKeyFingerprint(text: string): string {
  return fingerprint(parsePublicKey(text).blob);
}

/**
 * A fresh ed25519 key pair in OpenSSH format. ssh2 1.17's generator makes a pair its own parser rejects about once
 * in 256 (mscdex/ssh2#1390); such a pair is thrown away and made again.
 */
export function generateKeyPair(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519", { comment });
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}
