// The data readers: every format, against real data and against small fixtures built to hit the edges (records cut
// across reads, CRLF, blank lines, bad records, invalid UTF-8), plus a bounded-memory run over a 150 MB file.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { asyncBufferFromFile, parquetMetadataAsync } from "hyparquet";
import { parquetWriteFile } from "hyparquet-writer";
import { formatFromPath, readRecords, type RawRecord, type ReadOptions } from "../src/dataprep/readers.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const DOLLY = resolve(REPO, "..", "shared", "data", "dolly-15k-head.jsonl");

const work = mkdtempSync(join(tmpdir(), "ftune-readers-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

function fixture(name: string, ...parts: (string | Buffer)[]): string {
  const p = join(work, name);
  writeFileSync(p, Buffer.concat(parts.map((x) => (typeof x === "string" ? Buffer.from(x) : x))));
  return p;
}

async function all(path: string, opts?: ReadOptions): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of readRecords(path, undefined, opts)) out.push(r);
  return out;
}

/** The same records whatever the read size: 1 byte splits every record, a UTF-8 sequence and a CRLF. */
async function sameAtEveryChunkSize(path: string): Promise<RawRecord[]> {
  const want = await all(path);
  for (const chunkSize of [1, 2, 3, 5, 7, 13, 64]) assert.deepEqual(await all(path, { chunkSize }), want, `chunkSize ${chunkSize}`);
  return want;
}

/** [row, value or error] pairs: compact to compare, with the error messages' wording left to the engine. */
function summary(records: RawRecord[]): unknown[] {
  return records.map((r) => (r.error !== undefined ? [r.row, "error", ...(r.invalidUtf8 ? ["invalidUtf8"] : [])] : [r.row, r.value, ...(r.invalidUtf8 ? ["invalidUtf8"] : [])]));
}

const BAD_UTF8 = Buffer.from([0xc3, 0x28, 0xff]); // a lead byte without its continuation, and a byte never valid

describe("formatFromPath / readRecords arguments", () => {
  it("maps extensions case-insensitively and rejects unknown ones before reading", () => {
    assert.equal(formatFromPath("data/train.jsonl"), "jsonl");
    assert.equal(formatFromPath("data/TRAIN.NDJSON"), "jsonl");
    assert.equal(formatFromPath("x.Json"), "json");
    assert.equal(formatFromPath("x.parquet"), "parquet");
    assert.equal(formatFromPath("x.CSV"), "csv");
    assert.equal(formatFromPath("x.jsonl.gz"), undefined);
    assert.equal(formatFromPath("x.txt"), undefined);
    assert.throws(() => readRecords("data/train.txt"), (e: Error) => {
      assert.match(e.message, /data\/train\.txt/);
      assert.match(e.message, /\.jsonl, \.ndjson, \.json, \.parquet, \.csv/);
      return true;
    });
  });

  it("an explicit format wins over the extension", async () => {
    const p = fixture("records.txt", '{"a":1}\n');
    assert.deepEqual(summary(await (async () => {
      const out: RawRecord[] = [];
      for await (const r of readRecords(p, "jsonl")) out.push(r);
      return out;
    })()), [[1, { a: 1 }]]);
  });

  it("a missing file throws, naming the path", async () => {
    const p = join(work, "nope", "train.jsonl");
    for (const name of ["train.jsonl", "train.json", "train.csv", "train.parquet"]) {
      await assert.rejects(all(join(work, "nope", name)), new RegExp(`cannot read .*nope/${name.replace(".", "\\.")}: no such file`));
    }
    await assert.rejects(all(p), { name: "UserError" });
  });
});

describe("jsonl", () => {
  it("reads the dolly head: every record, lines 1..382, values as JSON.parse gives them", async () => {
    const lines = readFileSync(DOLLY, "utf8").split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 382);
    const got = await all(DOLLY);
    assert.equal(got.length, 382);
    got.forEach((r, i) => {
      assert.equal(r.file, DOLLY);
      assert.equal(r.row, i + 1);
      assert.equal(r.unit, "line");
      assert.equal(r.error, undefined);
      assert.equal(r.invalidUtf8, undefined);
      assert.deepEqual(r.value, JSON.parse(lines[i]!));
    });
    assert.deepEqual(Object.keys(got[0]!.value as object).sort(), ["category", "context", "instruction", "response"]);
    // Cut into 4 KiB reads, lines span chunks all the time.
    assert.deepEqual(await all(DOLLY, { chunkSize: 4096 }), got);
  });

  it("CRLF, blank and whitespace lines, a bad line, invalid UTF-8, no final newline: line numbers stay true", async () => {
    const p = fixture(
      "mixed.jsonl",
      '\uFEFF{"a":1}\r\n', // 1, after a BOM
      "\n", // 2 blank
      "  \t \r\n", // 3 whitespace only
      '{"a":"é ü 日本 🙂"}\n', // 4, multi-byte sequences for the 1-byte reads to cut
      '{"a": }\n', // 5 bad JSON
      '{"a":"', BAD_UTF8, '"}\n', // 6 invalid UTF-8, still JSON
      '{"a":"\uFFFD is a real character"}\n', // 7 a genuine U+FFFD: valid UTF-8
      "[1,2]\r\n", // 8 not an object: the reader does not judge
      '{"a":4}', // 9 without a newline
    );
    const got = await sameAtEveryChunkSize(p);
    assert.deepEqual(summary(got), [
      [1, { a: 1 }],
      [4, { a: "é ü 日本 🙂" }],
      [5, "error"],
      [6, { a: "\uFFFD(\uFFFD" }, "invalidUtf8"],
      [7, { a: "\uFFFD is a real character" }],
      [8, [1, 2]],
      [9, { a: 4 }],
    ]);
    assert.match(got[2]!.error!, /^invalid JSON: /);
    assert.equal(got[2]!.value, undefined);
    assert.ok(got.every((r) => r.unit === "line" && r.file === p));
  });

  it("an empty file and a file of blank lines have no records", async () => {
    assert.deepEqual(await all(fixture("empty.jsonl")), []);
    assert.deepEqual(await all(fixture("blank.jsonl", "\n\r\n  \n")), []);
  });
});

describe("json", () => {
  it("splits a top-level array into its elements, whatever the strings and nesting hold and wherever reads cut", async () => {
    const first = { t: 'a ] } [ { "quoted" \\', n: [1, [2, { x: "]" }]], o: { k: {} }, e: "" };
    const p = fixture(
      "array.json",
      "\uFEFF [\r\n  ",
      JSON.stringify(first),
      ',\n  {"t": "é日本\\u00e9\\"\\\\"},\n',
      '  {"bad": [1, 2},\n', // 3: a mismatched bracket ends at its "}", and the next element still parses
      '  {"after": true},\n',
      "  42 , \"str, with [comma]\" ,null,\n", // scalars are elements too (5, 6, 7)
      '  {"bad2": },\n', // 8
      '  {"a":"', BAD_UTF8, '"},\n', // 9
      "  ,{\"last\": 1}\n", // 10: nothing between two commas; 11
      "]\n",
    );
    const got = await sameAtEveryChunkSize(p);
    assert.deepEqual(summary(got), [
      [1, first],
      [2, { t: 'é日本é"\\' }],
      [3, "error"],
      [4, { after: true }],
      [5, 42],
      [6, "str, with [comma]"],
      [7, null],
      [8, "error"],
      [9, { a: "\uFFFD(\uFFFD" }, "invalidUtf8"],
      [10, "error"],
      [11, { last: 1 }],
    ]);
    assert.ok(got.every((r) => r.unit === "element" && r.file === p));
    assert.match(got[2]!.error!, /^invalid JSON: /);
    assert.match(got[9]!.error!, /missing element/);
  });

  it("a non-array top level is one error; an empty array has no records", async () => {
    for (const [name, text] of [["object.json", '{"data": [{"a": 1}]}'], ["jsonl-named.json", '{"a":1}\n{"a":2}\n'], ["empty.json", ""], ["space.json", " \n"]] as const) {
      const got = await all(fixture(name, text));
      assert.deepEqual(got, [{ file: join(work, name), row: 1, unit: "element", error: "expected a JSON array of records (use .jsonl for one record per line)" }], name);
    }
    assert.deepEqual(await all(fixture("none.json", " [ ] ")), []);
  });

  it("reports a truncated array, a trailing comma, content after the array, and a bracket that closes the array early", async () => {
    const cases: [string, unknown[]][] = [
      ['[{"a":1},{"b":2}', [[1, { a: 1 }], [2, { b: 2 }], [3, "error"]]], // cut off: both elements, then the error
      ['[{"a":1},{"b":', [[1, { a: 1 }], [2, "error"], [3, "error"]]], // the cut element, then the unclosed array
      ['[{"a":1},]', [[1, { a: 1 }], [2, "error"]]],
      ['[{"a":1}] {"b":2}', [[1, { a: 1 }], [2, "error"]]],
      ['[{"a":1]', [[1, "error"]]],
      ['[{"a":"unterminated]\n', [[1, "error"], [2, "error"]]],
    ];
    for (const [i, [text, want]] of cases.entries()) {
      const p = fixture(`edge-${i}.json`, text);
      assert.deepEqual(summary(await sameAtEveryChunkSize(p)), want, text);
    }
    const [, trailing] = await all(join(work, "edge-2.json"));
    assert.match(trailing!.error!, /trailing comma/);
    const [, after] = await all(join(work, "edge-3.json"));
    assert.match(after!.error!, /after the closing \]/);
    const [, , open] = await all(join(work, "edge-0.json"));
    assert.match(open!.error!, /not closed/);
  });
});

describe("csv", () => {
  it("maps the header, keeps start lines through CRLF, blank lines and multi-line fields, reports bad rows and reads on", async () => {
    const p = fixture(
      "data.csv",
      "\uFEFFinstruction,response,n\r\n", // 1: header, after a BOM
      "hello,world,1\r\n", // 2
      "\r\n", // 3 blank
      '"multi\r\nline, with comma","say ""hi""\n",2\n', // 4-6: CRLF and LF inside quotes
      "only,two\n", // 7: wrong column count
      'x"y,plain,3\n', // 8: a stray quote is text
      "\n\n", // 9, 10 blank
      BAD_UTF8, ",z,4\n", // 11
      "a,b,c,d\n", // 12: too many columns
      "last,row,5", // 13, no final newline
    );
    const got = await sameAtEveryChunkSize(p);
    assert.deepEqual(summary(got), [
      [2, { instruction: "hello", response: "world", n: "1" }],
      [4, { instruction: "multi\r\nline, with comma", response: 'say "hi"\n', n: "2" }],
      [7, "error"],
      [8, { instruction: 'x"y', response: "plain", n: "3" }],
      [11, { instruction: "\uFFFD(\uFFFD", response: "z", n: "4" }, "invalidUtf8"],
      [12, "error"],
      [13, { instruction: "last", response: "row", n: "5" }],
    ]);
    assert.ok(got.every((r) => r.unit === "line" && r.file === p));
    assert.equal(got[2]!.error, "invalid CSV: 2 columns, the header has 3");
    assert.equal(got[5]!.error, "invalid CSV: 4 columns, the header has 3");
  });

  it("an unclosed quote is reported at the line its record starts; a duplicate header name is one error", async () => {
    const p = fixture("open.csv", "a,b\n1,2\n\n3,\"open\n4,5\n");
    const got = await sameAtEveryChunkSize(p);
    assert.deepEqual(summary(got), [[2, { a: "1", b: "2" }], [4, "error"]]);
    assert.match(got[1]!.error!, /^invalid CSV: Quote Not Closed/);

    const dup = await all(fixture("dup.csv", "\n\na,b,a\n1,2,3\n"));
    assert.deepEqual(dup, [{ file: join(work, "dup.csv"), row: 3, unit: "line", error: 'invalid CSV: duplicate column name "a" in the header' }]);
    assert.deepEqual(await all(fixture("header-only.csv", "a,b\r\n")), []);
    assert.deepEqual(await all(fixture("empty.csv")), []);
  });
});

describe("parquet", () => {
  it("reads row group by row group, with INT64 as numbers (or strings past 2^53) and invalid UTF-8 flagged", async () => {
    const p = join(work, "data.parquet");
    const big = 2n ** 60n + 1n;
    parquetWriteFile({
      filename: p,
      columnData: [
        { name: "instruction", data: ["one", "two", "três", "four", "five", "six", "seven"], type: "STRING" },
        { name: "n", data: [1n, 2n, -3n, big, 5n, 0n, 7n], type: "INT64" },
        { name: "ok", data: [true, false, true, null, true, false, true], type: "BOOLEAN" },
      ],
      rowGroupSize: 3,
    });
    const meta = await parquetMetadataAsync(await asyncBufferFromFile(p));
    assert.deepEqual(meta.row_groups.map((g) => Number(g.num_rows)), [3, 3, 1]);
    const got = await all(p);
    assert.deepEqual(summary(got), [
      [1, { instruction: "one", n: 1, ok: true }],
      [2, { instruction: "two", n: 2, ok: false }],
      [3, { instruction: "três", n: -3, ok: true }],
      [4, { instruction: "four", n: big.toString(), ok: null }],
      [5, { instruction: "five", n: 5, ok: true }],
      [6, { instruction: "six", n: 0, ok: false }],
      [7, { instruction: "seven", n: 7, ok: true }],
    ]);
    assert.ok(got.every((r) => r.unit === "row" && r.file === p));

    // Bytes that are not UTF-8 in a STRING column: only that row is flagged.
    const q = join(work, "utf8.parquet");
    parquetWriteFile({
      filename: q,
      columnData: [{ name: "text", data: [new TextEncoder().encode("fine"), new Uint8Array([0x61, 0xff]), new TextEncoder().encode("\uFFFD")], type: "STRING" }],
    });
    assert.deepEqual(summary(await all(q)), [[1, { text: "fine" }], [2, { text: "a\uFFFD" }, "invalidUtf8"], [3, { text: "\uFFFD" }]]);
  });

  it("GZIP pages decode through node:zlib; a codec nothing here decodes is one error record naming it", async () => {
    const gz = join(work, "gzip.parquet");
    parquetWriteFile({
      filename: gz,
      columnData: [{ name: "text", data: ["a", "b", "c"], type: "STRING" }],
      codec: "GZIP",
      compressors: { GZIP: (b) => gzipSync(b) },
      rowGroupSize: 2,
    });
    assert.deepEqual(summary(await all(gz)), [[1, { text: "a" }], [2, { text: "b" }], [3, { text: "c" }]]);

    const lz4 = join(work, "lz4.parquet");
    // Written "compressed" by the identity: reading fails at the codec, before the bytes matter.
    parquetWriteFile({ filename: lz4, columnData: [{ name: "text", data: ["a"], type: "STRING" }], codec: "LZ4_RAW", compressors: { LZ4_RAW: (b) => b } });
    const got = await all(lz4);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.row, 1);
    assert.match(got[0]!.error!, /^invalid Parquet data: .*LZ4_RAW/);
  });

  it("a file that is not Parquet is one error record", async () => {
    const p = fixture("fake.parquet", '{"a":1}\n');
    const got = await all(p);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.row, 1);
    assert.match(got[0]!.error!, /^invalid Parquet file: /);
  });
});

describe("stopping early", () => {
  const fds = () => readdirSync("/proc/self/fd").length;
  it("closes the file in every format", { skip: !existsSync("/proc/self/fd") && "needs /proc/self/fd" }, async () => {
    const pq = join(work, "early.parquet");
    parquetWriteFile({ filename: pq, columnData: [{ name: "a", data: [1, 2, 3], type: "INT32" }], rowGroupSize: 1 });
    const files = [
      fixture("early.jsonl", '{"a":1}\n{"a":2}\n'),
      fixture("early.json", '[{"a":1},{"a":2}]'),
      fixture("early.csv", "a\n1\n2\n"),
      pq,
    ];
    const before = fds();
    for (const p of files) {
      for await (const r of readRecords(p, undefined, { chunkSize: 4 })) {
        assert.equal(r.row, p.endsWith(".csv") ? 2 : 1);
        break;
      }
    }
    assert.equal(fds(), before);
  });
});

describe("scale", () => {
  const dolly = readFileSync(DOLLY);

  // First: garbage left by other tests would count as growth here.
  it("a 150 MB JSONL file is read with bounded memory", async (t) => {
    const p = join(work, "big.jsonl");
    // Written in chunks: the point is that nothing holds the whole file.
    const fd = openSync(p, "w");
    let size = 0;
    let lines = 0;
    while (size < 150e6) {
      writeSync(fd, dolly);
      size += dolly.length;
      lines += 382;
    }
    closeSync(fd);
    const base = process.memoryUsage().rss;
    let peak = base;
    let n = 0;
    const t0 = performance.now();
    for await (const r of readRecords(p)) {
      if (++n % 2000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      if (r.error !== undefined) assert.fail(`${r.row}: ${r.error}`);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(n, lines);
    const growth = (peak - base) / 2 ** 20;
    t.diagnostic(`${(size / 1e6).toFixed(0)} MB, ${n} records in ${(performance.now() - t0).toFixed(0)} ms; RSS ${(base / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(growth < 100, `RSS grew ${growth.toFixed(0)} MiB reading a ${(size / 1e6).toFixed(0)} MB file`);
  });

  it("reads 15k dolly records fast (printed, not asserted)", async (t) => {
    const p = join(work, "dolly-15k.jsonl");
    writeFileSync(p, Buffer.concat(Array.from({ length: 40 }, () => dolly)));
    for (const format of ["jsonl", "json"] as const) {
      let path = p;
      if (format === "json") {
        path = join(work, "dolly-15k.json");
        const lines = dolly.toString("utf8").trimEnd().split("\n");
        writeFileSync(path, `[\n${Array.from({ length: 40 }, () => lines.join(",\n")).join(",\n")}\n]\n`);
      }
      const t0 = performance.now();
      let n = 0;
      for await (const r of readRecords(path)) {
        assert.equal(r.error, undefined);
        n++;
      }
      const ms = performance.now() - t0;
      assert.equal(n, 382 * 40);
      t.diagnostic(`${format}: ${n} dolly records (${(dolly.length * 40 / 1e6).toFixed(1)} MB) in ${ms.toFixed(0)} ms`);
    }
  });
});
