// The ssh provider: a GPU box the user already has (compute.ssh). ftune rents and releases nothing; the private key
// comes from the environment variable compute.ssh.private_key_env, and the host key is pinned from compute.ssh.host_key.
import { UserError } from "../util/errors.js";
import type { SshHostConfig } from "../config/index.js";
import type { Host, HostSpec, HostStatus, Provider } from "./types.js";

export class SshProvider implements Provider {
  constructor(private readonly box: SshHostConfig, private readonly env: NodeJS.ProcessEnv = process.env) {}

  async acquire(spec: HostSpec): Promise<Host> {
    const key = this.env[this.box.private_key_env];
    if (!key) throw new UserError(`compute.ssh: the environment variable ${this.box.private_key_env} (compute.ssh.private_key_env) holds no private key`);
    if (!this.box.host_key) {
      throw new UserError(`compute.ssh.host_key is not set: pin the box's key (e.g. the output of \`ssh-keyscan -t ed25519 ${this.box.host}\`, checked out of band) so ftune never trusts an unknown host`);
    }
    return {
      provider: "ssh",
      id: this.box.host,
      ssh: { host: this.box.host, port: this.box.port, user: this.box.user, privateKey: key, hostKey: this.box.host_key },
      workdir: spec.workdir,
      market: "none",
      launchedAt: new Date().toISOString(),
      resources: {},
    };
  }

  async release(): Promise<void> {}

  async status(): Promise<HostStatus> {
    return { state: "running" };
  }
}
