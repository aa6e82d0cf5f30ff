// Checkpoints in the run store: runs/<project>/<namespace>/<run-id>/checkpoints/checkpoint-<step>/. Each is
// uploaded file by file, then `_ftune_checkpoint.json` (every file's size and sha256) is written last: that file is
// the completeness marker, so a resume never starts from a half-copied checkpoint, and it is also the manifest a
// new host fetches the checkpoint by.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { sha256File, uploadFiles, type FileEntry, type Store } from "../store/index.js";

export const CHECKPOINT_MARKER = "_ftune_checkpoint.json";
const NAME = /^checkpoint-(\d+)$/;

export interface StoredCheckpoint {
  name: string;
  step: number;
  /** Key prefix of the checkpoint's folder in the store. */
  prefix: string;
  files: FileEntry[];
}

export function checkpointStep(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

export async function entryOf(dir: string, path: string): Promise<FileEntry> {
  return { path, size: statSync(join(dir, path)).size, sha256: await sha256File(join(dir, path)) };
}

/** Every file below dir, as paths relative to it, with size and sha256. */
export async function filesOf(dir: string, rel = ""): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    if (statSync(join(dir, p)).isDirectory()) out.push(...(await filesOf(dir, p)));
    else out.push(await entryOf(dir, p));
  }
  return out;
}

export class CheckpointStore {
  constructor(
    private readonly store: Store,
    /** The run's prefix: runs/<project>/<namespace>/<run-id>. */
    private readonly runPrefix: string,
  ) {}

  prefixOf(name: string): string {
    return `${this.runPrefix}/checkpoints/${name}`;
  }

  uri(name: string): string {
    return this.store.uri(this.prefixOf(name));
  }

  /** Uploads a complete local checkpoint folder; the marker goes last. */
  async save(localDir: string, name: string): Promise<StoredCheckpoint> {
    const step = checkpointStep(name);
    if (step === undefined) throw new TypeError(`not a checkpoint folder name: ${name}`);
    const files = (await filesOf(localDir)).filter((f) => f.path !== CHECKPOINT_MARKER);
    await uploadFiles(this.store, localDir, this.prefixOf(name), files, { label: `sync ${name}`, progress: { quiet: true } });
    await this.store.putBytes(`${this.prefixOf(name)}/${CHECKPOINT_MARKER}`, `${JSON.stringify({ name, step, files }, null, 2)}\n`, { contentType: "application/json" });
    return { name, step, prefix: this.prefixOf(name), files };
  }

  /** The newest checkpoint whose marker is there, or undefined when none is complete. */
  async newest(): Promise<StoredCheckpoint | undefined> {
    let best: StoredCheckpoint | undefined;
    for await (const o of this.store.list(`${this.runPrefix}/checkpoints/`)) {
      if (!o.key.endsWith(`/${CHECKPOINT_MARKER}`)) continue;
      const name = o.key.split("/").at(-2)!;
      const step = checkpointStep(name);
      if (step === undefined || (best && best.step >= step)) continue;
      const body = await this.store.getBytes(o.key);
      if (!body) continue;
      const files = (JSON.parse(body.toString("utf8")) as { files: FileEntry[] }).files;
      best = { name, step, prefix: this.prefixOf(name), files };
    }
    return best;
  }
}
