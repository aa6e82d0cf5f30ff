// Remote output in the job log: whole lines, prefixed, grouped in Actions, secrets masked even across chunks.
import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import { streamToLog } from "../src/remote/index.js";

afterEach(() => {
  delete process.env.GITHUB_ACTIONS;
});

describe("streamToLog", () => {
  it("prefixes whole lines, marks stderr, and masks secrets split across chunks", () => {
    const lines: string[] = [];
    const s = streamToLog({ prefix: "[g5.xlarge i-0abc]", secrets: ["hf_supersecret123"], write: (l) => lines.push(l) });
    s.onStdout("step 1 loss 2.3\nstep 2 lo");
    s.onStdout("ss 2.1\ntoken hf_super");
    s.onStderr("warning: slow\r\n");
    s.onStdout("secret123 used\nno newline at the end");
    s.end();
    assert.deepEqual(lines, [
      "[g5.xlarge i-0abc] step 1 loss 2.3",
      "[g5.xlarge i-0abc] step 2 loss 2.1",
      "[g5.xlarge i-0abc] ! warning: slow",
      "[g5.xlarge i-0abc] token *** used",
      "[g5.xlarge i-0abc] no newline at the end",
    ]);
  });

  it("opens and closes a collapsible group in GitHub Actions", () => {
    process.env.GITHUB_ACTIONS = "true";
    const lines: string[] = [];
    const out: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      const s = streamToLog({ prefix: ">", group: "trainer on i-0abc", secrets: ["abcd1234"], write: (l) => lines.push(l) });
      s.onStdout("hello abcd1234\n");
      s.end();
    } finally {
      process.stdout.write = orig;
    }
    assert.deepEqual(lines, ["> hello ***"]);
    const text = out.join("");
    assert.match(text, /::add-mask::abcd1234/);
    assert.match(text, /::group::trainer on i-0abc/);
    assert.match(text, /::endgroup::/);
  });
});
