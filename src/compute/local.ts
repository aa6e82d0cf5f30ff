// The local provider: this machine runs the job (laptops, self-hosted GPU runners, the dry run). Nothing is rented,
// so nothing can be left running by ftune: release only forgets the host.
import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import type { Host, HostSpec, HostStatus, Provider } from "./types.js";

export class LocalProvider implements Provider {
  async acquire(spec: HostSpec): Promise<Host> {
    // compute.workdir defaults to /opt/ftune for boxes; locally a folder under the working directory is the safe default.
    const workdir = spec.workdir === "/opt/ftune" ? resolve(".ftune", "work") : resolve(spec.workdir);
    await mkdir(workdir, { recursive: true });
    return { provider: "local", id: "local", workdir, market: "none", launchedAt: new Date().toISOString(), resources: {} };
  }

  async release(): Promise<void> {}

  async status(): Promise<HostStatus> {
    return { state: "running" };
  }
}
