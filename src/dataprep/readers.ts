// Streams training records out of data files (JSONL, JSON array, CSV, Parquet) with bounded memory: a data file far
// larger than RAM must still go through. Every record carries its file and line/row, so a later check can say
// "data/train.jsonl:1234: ...". A record that does not parse is yielded with `error`, not thrown: one bad line must
// not hide the others. Only I/O failures (a missing file, a read error) throw.
import { open, type FileHandle } from "node:fs/promises";
import { finished } from "node:stream/promises";
import * as zlib from "node:zlib";
import { parse as parseCsv, type Parser as CsvParser } from "csv-parse";
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type Compressors, type FileMetaData } from "hyparquet";
import { UserError } from "../util/errors.js";

export type DataFormat = "jsonl" | "json" | "parquet" | "csv";

export interface RawRecord {
  /** The path as given to readRecords (shown in messages). */
  file: string;
  /** 1-based line number for jsonl/csv (the line where the record starts), 1-based row/element index for json/parquet. */
  row: number;
  /** What `row` counts, for messages: "line" for jsonl/csv, "row" for parquet, "element" for json. */
  unit: "line" | "row" | "element";
  /** The parsed record (a plain object for a valid record); undefined for an unparseable one, with `error` set. */
  value?: unknown;
  /** Why the record could not be parsed, e.g. "invalid JSON: Unexpected token } in JSON at position 12". */
  error?: string;
  /** True when the raw bytes of this record were not valid UTF-8 (the value holds U+FFFD where they were). */
  invalidUtf8?: boolean;
}

export interface ReadOptions {
  /** Bytes read from the file at a time (default 1 MiB); tests make it tiny to cut records across reads. */
  chunkSize?: number;
}

const EXTENSIONS: ReadonlyArray<[string, DataFormat]> = [
  [".jsonl", "jsonl"],
  [".ndjson", "jsonl"],
  [".json", "json"],
  [".parquet", "parquet"],
  [".csv", "csv"],
];

export const SUPPORTED_EXTENSIONS: readonly string[] = EXTENSIONS.map(([ext]) => ext);

export function formatFromPath(path: string): DataFormat | undefined {
  const lower = path.toLowerCase();
  return EXTENSIONS.find(([ext]) => lower.endsWith(ext))?.[1];
}

/**
 * The records of one data file, in file order. The format defaults to the one the extension names; an unknown
 * extension throws here, before anything is read.
 */
export function readRecords(path: string, format?: DataFormat, opts: ReadOptions = {}): AsyncGenerator<RawRecord> {
  const fmt = format ?? formatFromPath(path);
  const chunkSize = opts.chunkSize ?? 1 << 20;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
  switch (fmt) {
    case "jsonl":
      return readJsonl(path, chunkSize);
    case "json":
      return readJsonArray(path, chunkSize);
    case "csv":
      return readCsv(path, chunkSize);
    case "parquet":
      return readParquet(path);
    default:
      throw new UserError(
        `${path}: cannot tell the data format from the file name; supported extensions: ${SUPPORTED_EXTENSIONS.join(", ")} (or set the format explicitly)`,
      );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// File access

// Causes the user can fix are UserErrors (the CLI prints them without a stack); anything else stays a plain Error.
const USER_FIXABLE = new Set(["ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR"]);
const REASONS: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "it is a directory",
  ENOTDIR: "a parent of it is not a directory",
};

/** An I/O failure, kept apart from parse failures so readers rethrow it instead of yielding it as a bad record. */
class ReadFailure extends Error {}

function readFailure(path: string, e: unknown): Error {
  if (e instanceof ReadFailure || e instanceof UserError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code && REASONS[code]) ?? (e instanceof Error ? e.message : String(e));
  const message = `cannot read ${path}: ${reason}`;
  const err = code && USER_FIXABLE.has(code) ? new UserError(message, { cause: e }) : new ReadFailure(message, { cause: e });
  return err;
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    throw readFailure(path, e);
  }
}

/**
 * The file's bytes in order, a chunk at a time, without a leading UTF-8 byte order mark. With `reuse`, every chunk
 * is read into the same buffer, so the caller must copy what it keeps past the next chunk: a fresh 1 MiB buffer per
 * read is memory outside the JS heap that the GC frees late, and on a large file that alone grows RSS by ~100 MB.
 */
async function* readChunks(path: string, chunkSize: number, reuse: boolean): AsyncGenerator<Buffer> {
  const handle = await openFile(path);
  try {
    let first = true;
    // The first read is at least 3 bytes so that it holds a whole BOM.
    const size = Math.max(chunkSize, 3);
    let buf = Buffer.allocUnsafe(size);
    for (;;) {
      if (!first && !reuse) buf = Buffer.allocUnsafe(size);
      let n: number;
      try {
        n = (await handle.read(buf, 0, first ? size : chunkSize, null)).bytesRead;
      } catch (e) {
        throw readFailure(path, e);
      }
      if (n === 0) return;
      let chunk = buf.subarray(0, n);
      if (first) {
        first = false;
        // Editors on Windows like to start UTF-8 files with a BOM, which JSON.parse and CSV headers choke on.
        if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
        if (chunk.length === 0) continue;
      }
      yield chunk;
    }
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Text decoding

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes with U+FFFD for bad bytes, and says whether there were any. The strict decoder only runs when the lenient
 * text holds a U+FFFD (the only way it can have failed), so valid text costs one decode and one scan.
 */
function decodeUtf8(bytes: Uint8Array): { text: string; invalid: boolean } {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  if (!text.includes("\uFFFD")) return { text, invalid: false };
  try {
    strictUtf8.decode(bytes);
    return { text, invalid: false }; // a genuine U+FFFD in valid text
  } catch {
    return { text, invalid: true };
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One record from the bytes of one JSON value (a JSONL line or a JSON array element). */
function jsonRecord(file: string, row: number, unit: RawRecord["unit"], bytes: Uint8Array): RawRecord {
  const { text, invalid } = decodeUtf8(bytes);
  const rec: RawRecord = { file, row, unit };
  try {
    rec.value = JSON.parse(text);
  } catch (e) {
    rec.error = `invalid JSON: ${describe(e)}`;
  }
  if (invalid) rec.invalidUtf8 = true;
  return rec;
}

// JSON's insignificant whitespace: space, tab, LF, CR.
function isJsonSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

function isBlank(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (!isJsonSpace(bytes[i]!)) return false;
  return true;
}

function joined(pieces: Buffer[], last: Buffer): Buffer {
  if (pieces.length === 0) return last;
  pieces.push(last);
  return Buffer.concat(pieces);
}

// ---------------------------------------------------------------------------------------------------------------
// JSONL: one record per "\n"-terminated line; blank lines are not records but still count.

async function* readJsonl(path: string, chunkSize: number): AsyncGenerator<RawRecord> {
  let line = 0;
  // The start of a line that continues into the next chunk: kept as slices and joined once, so a line spanning
  // many chunks is copied once instead of once per chunk.
  let pieces: Buffer[] = [];
  const record = (bytes: Buffer): RawRecord | undefined => {
    line++;
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    const body = bytes.subarray(0, end);
    return isBlank(body) ? undefined : jsonRecord(path, line, "line", body);
  };
  for await (const chunk of readChunks(path, chunkSize, true)) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const rec = record(joined(pieces, chunk.subarray(start, nl)));
      pieces = [];
      start = nl + 1;
      if (rec) yield rec;
    }
    if (start < chunk.length) pieces.push(Buffer.from(chunk.subarray(start))); // a copy: the chunk is reused
  }
  if (pieces.length) {
    const rec = record(Buffer.concat(pieces));
    if (rec) yield rec;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON: a top-level array, split into its elements by a byte-level scanner so a multi-GB array is never in memory
// at once. Each element's text goes to JSON.parse; the scanner only tracks strings and brackets, enough to find
// the commas between elements. Structural characters are ASCII and never occur inside a UTF-8 multi-byte sequence,
// so scanning bytes is safe.

const NOT_AN_ARRAY = "expected a JSON array of records (use .jsonl for one record per line)";
const NONE = -2; // no such byte left in the chunk: stop looking
function nextIndex(chunk: Buffer, byte: number, from: number): number {
  const at = chunk.indexOf(byte, from);
  return at === -1 ? NONE : at;
}
const [QUOTE, BACKSLASH, COMMA, OPEN_SQ, CLOSE_SQ, OPEN_CURLY, CLOSE_CURLY] = [0x22, 0x5c, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d];

async function* readJsonArray(path: string, chunkSize: number): AsyncGenerator<RawRecord> {
  let started = false; // saw the opening "["
  let done = false; // saw the closing "]"
  let index = 0; // elements yielded so far
  let inString = false;
  let escaped = false;
  // Brackets open inside the current element. A closer that does not match the innermost opener closes up to the
  // opener it does match, so one malformed element ends where its brackets say and the next one still parses.
  const stack: number[] = [];
  let inElement = false; // saw the element's first non-space byte
  let afterComma = false; // the next element follows a comma (an empty one is an error then)
  let pieces: Buffer[] = [];

  const element = (bytes: Buffer): RawRecord => jsonRecord(path, ++index, "element", bytes);
  const failure = (error: string): RawRecord => ({ file: path, row: ++index, unit: "element", error });

  for await (const chunk of readChunks(path, chunkSize, true)) {
    let elemStart = inElement ? 0 : -1;
    const out: RawRecord[] = [];
    // Where the next quote and backslash are, found with indexOf (native) and reused until passed: strings are
    // most of the bytes, and a byte-by-byte walk through them is several times slower.
    let nextQuote = -1;
    let nextBackslash = -1;
    for (let i = 0; i < chunk.length; i++) {
      if (inString) {
        if (escaped) {
          escaped = false;
          continue;
        }
        if (nextQuote < i && nextQuote !== NONE) nextQuote = nextIndex(chunk, QUOTE, i);
        if (nextBackslash < i && nextBackslash !== NONE) nextBackslash = nextIndex(chunk, BACKSLASH, i);
        if (nextBackslash >= 0 && (nextQuote < 0 || nextBackslash < nextQuote)) {
          i = nextBackslash;
          escaped = true;
        } else if (nextQuote >= 0) {
          i = nextQuote;
          inString = false;
        } else break; // the string goes on into the next chunk
        continue;
      }
      const b = chunk[i]!;
      if (!started || done) {
        if (isJsonSpace(b)) continue;
        if (!started && b === OPEN_SQ) {
          started = true;
          continue;
        }
        for (const r of out) yield r;
        yield started ? failure("unexpected content after the closing ] of the array") : { file: path, row: 1, unit: "element", error: NOT_AN_ARRAY };
        return;
      }
      if (stack.length === 0) {
        // Between elements, or in a scalar element, at the array's own level.
        if (b === COMMA || b === CLOSE_SQ) {
          if (inElement) out.push(element(joined(pieces, chunk.subarray(elemStart, i))));
          else if (b === COMMA) out.push(failure("invalid JSON: missing element before a comma"));
          else if (afterComma) out.push(failure("invalid JSON: trailing comma before the closing ]"));
          pieces = [];
          inElement = false;
          elemStart = -1;
          afterComma = b === COMMA;
          if (b === CLOSE_SQ) done = true;
          continue;
        }
        if (isJsonSpace(b)) continue;
        if (!inElement) {
          inElement = true;
          elemStart = i;
        }
      }
      if (b === QUOTE) inString = true;
      else if (b === OPEN_CURLY || b === OPEN_SQ) stack.push(b);
      else if (b === CLOSE_CURLY || b === CLOSE_SQ) {
        const opener = b === CLOSE_CURLY ? OPEN_CURLY : OPEN_SQ;
        const at = stack.lastIndexOf(opener);
        if (at !== -1) stack.length = at;
        else if (b === CLOSE_SQ && stack.length > 0) {
          // No "[" open inside the element: this "]" closes the array itself, and the element is cut short.
          stack.length = 0;
          i--;
        }
        // A stray "}" stays in the element's text, and JSON.parse reports it.
      }
    }
    if (inElement) pieces.push(Buffer.from(chunk.subarray(elemStart))); // a copy: the chunk is reused
    for (const r of out) yield r;
  }
  if (!started) {
    yield { file: path, row: 1, unit: "element", error: NOT_AN_ARRAY };
    return;
  }
  if (inElement) yield element(Buffer.concat(pieces));
  if (!done) yield failure("unexpected end of file: the array is not closed with ]");
}

// ---------------------------------------------------------------------------------------------------------------
// CSV: csv-parse, with the header mapped to keys here. Records are taken synchronously from its on_record hook
// (and dropped from its stream): that keeps them in order next to a parse error, which would otherwise discard the
// records still buffered in the stream, and lets the start line of each record be counted here, since csv-parse
// only knows the line a record ends on (and counts a CRLF inside a quoted field as two lines).

interface CsvRow {
  fields: Uint8Array[];
  emptyLines: number;
}

async function* readCsv(path: string, chunkSize: number): AsyncGenerator<RawRecord> {
  const rows: CsvRow[] = [];
  const parser: CsvParser = parseCsv({
    encoding: null, // fields as bytes, so invalid UTF-8 can be told from a genuine U+FFFD
    relax_column_count: true, // a row with the wrong column count is reported here and reading goes on
    relax_quotes: true, // a quote inside an unquoted field is text, as Python's csv and pandas read it
    skip_empty_lines: true,
    record_delimiter: ["\r\n", "\n"], // mixed line endings: auto-detection would lock onto the first one
    // csv-parse types fields as strings; with encoding: null they are bytes.
    on_record: (fields, info) => {
      rows.push({ fields: fields as unknown as Uint8Array[], emptyLines: info.empty_lines });
      return undefined;
    },
  });
  parser.on("error", () => undefined); // reported through write/finished below
  parser.resume();

  let header: string[] | undefined;
  let nextLine = 1; // the line after the previous record
  let emptyBefore = 0; // blank lines csv-parse had skipped up to the previous record

  function* drain(): Generator<RawRecord> {
    for (const row of rows) {
      const start = nextLine + row.emptyLines - emptyBefore;
      emptyBefore = row.emptyLines;
      let invalid = false;
      let newlines = 0;
      const values = row.fields.map((f) => {
        for (let i = f.indexOf(0x0a); i !== -1; i = f.indexOf(0x0a, i + 1)) newlines++;
        const d = decodeUtf8(f);
        invalid ||= d.invalid;
        return d.text;
      });
      nextLine = start + newlines + 1;
      if (!header) {
        header = values;
        const dup = values.find((v, i) => values.indexOf(v) !== i);
        if (dup !== undefined) throw new CsvHeaderError(start, `duplicate column name ${JSON.stringify(dup)} in the header`);
        continue;
      }
      const rec: RawRecord = { file: path, row: start, unit: "line" };
      if (values.length !== header.length) {
        rec.error = `invalid CSV: ${values.length} column${values.length === 1 ? "" : "s"}, the header has ${header.length}`;
      } else {
        const obj: Record<string, string> = {};
        for (let i = 0; i < values.length; i++) obj[header[i]!] = values[i]!;
        rec.value = obj;
      }
      if (invalid) rec.invalidUtf8 = true;
      yield rec;
    }
    rows.length = 0;
  }

  // A parse error (only an unclosed quote at the end of the file, with the relaxed options above) ends the file:
  // what follows cannot be split into records reliably. It is yielded at the line where the broken record starts.
  const parseFailure = (e: unknown): RawRecord => {
    const empty = (e as { empty_lines?: number }).empty_lines;
    const row = nextLine + (typeof empty === "number" ? Math.max(0, empty - emptyBefore) : 0);
    return { file: path, row, unit: "line", error: `invalid CSV: ${describe(e)}` };
  };

  try {
    // Fresh buffers: csv-parse keeps a slice of the previous chunk (a record it could not finish yet).
    for await (const chunk of readChunks(path, chunkSize, false)) {
      const err = await new Promise<Error | null | undefined>((resolve) => parser.write(chunk, resolve));
      yield* drain();
      if (err) {
        yield parseFailure(err);
        return;
      }
    }
    parser.end();
    let failed: unknown;
    try {
      await finished(parser, { readable: false });
    } catch (e) {
      failed = e;
    }
    yield* drain();
    if (failed !== undefined) yield parseFailure(failed);
  } catch (e) {
    if (!(e instanceof CsvHeaderError)) throw e;
    yield { file: path, row: e.line, unit: "line", error: `invalid CSV: ${e.message}` };
  } finally {
    parser.destroy();
  }
}

/** A header no record can be mapped by: reported once, at the header, and the file is not read further. */
class CsvHeaderError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parquet: hyparquet (pure JS) over positioned reads of the file, one row group at a time, so memory is bounded
// by the largest row group, not the file.

// hyparquet decodes SNAPPY itself; node:zlib covers GZIP and BROTLI, and ZSTD (polars' default) where this Node has
// it (22.15+). Other codecs (LZ4) are reported as a parse error naming the codec.
function nodeCompressors(): Compressors {
  const z = zlib as unknown as { zstdDecompressSync?: (b: Uint8Array) => Buffer };
  const c: Compressors = {
    GZIP: (input) => zlib.gunzipSync(input),
    BROTLI: (input) => zlib.brotliDecompressSync(input),
  };
  if (z.zstdDecompressSync) {
    const zstd = z.zstdDecompressSync;
    c.ZSTD = (input) => zstd(input);
  }
  return c;
}

function fileBuffer(path: string, handle: FileHandle, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const out = new Uint8Array(Math.max(0, end - start));
      try {
        for (let off = 0; off < out.length; ) {
          const { bytesRead } = await handle.read(out, off, out.length - off, start + off);
          if (bytesRead === 0) throw new Error(`the file ended at byte ${start + off} (it changed while being read?)`);
          off += bytesRead;
        }
      } catch (e) {
        throw readFailure(path, e);
      }
      return out.buffer;
    },
  };
}

/** INT64 columns come back as BigInt, which JSON.stringify rejects: a Number when exact, else its decimal string. */
function plain(v: unknown, badStrings: ReadonlySet<string>, seen: { invalid: boolean }): unknown {
  if (typeof v === "bigint") return v >= Number.MIN_SAFE_INTEGER && v <= Number.MAX_SAFE_INTEGER ? Number(v) : v.toString();
  if (typeof v === "string") {
    if (badStrings.size && badStrings.has(v)) seen.invalid = true;
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, badStrings, seen));
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = plain(o[k], badStrings, seen);
  }
  return v;
}

async function* readParquet(path: string): AsyncGenerator<RawRecord> {
  const handle = await openFile(path);
  try {
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch (e) {
      throw readFailure(path, e);
    }
    const file = fileBuffer(path, handle, size);
    // Strings whose bytes were not valid UTF-8 in the current row group: hyparquet decodes leniently, and rows are
    // matched against these afterwards (a valid string identical to a mangled one is a false alarm too rare to
    // matter).
    const badStrings = new Set<string>();
    const parsers = {
      stringFromBytes(bytes: Uint8Array | undefined): string | undefined {
        if (!bytes) return undefined;
        const d = decodeUtf8(bytes);
        if (d.invalid) badStrings.add(d.text);
        return d.text;
      },
    };
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(file, { parsers });
    } catch (e) {
      if (e instanceof ReadFailure || e instanceof UserError) throw e;
      yield { file: path, row: 1, unit: "row", error: `invalid Parquet file: ${describe(e)}` };
      return;
    }
    const compressors = nodeCompressors();
    let groupStart = 0;
    for (const group of metadata.row_groups) {
      const rows = Number(group.num_rows);
      badStrings.clear();
      let objects: Record<string, unknown>[];
      try {
        objects = await parquetReadObjects({ file, metadata, rowStart: groupStart, rowEnd: groupStart + rows, compressors, parsers });
      } catch (e) {
        if (e instanceof ReadFailure || e instanceof UserError) throw e;
        // A row group that cannot be decoded (an unsupported codec, corruption) ends the file: the next groups
        // almost always share the cause.
        yield { file: path, row: groupStart + 1, unit: "row", error: `invalid Parquet data: ${describe(e)}` };
        return;
      }
      for (let i = 0; i < objects.length; i++) {
        const seen = { invalid: false };
        const rec: RawRecord = { file: path, row: groupStart + i + 1, unit: "row", value: plain(objects[i], badStrings, seen) };
        if (seen.invalid) rec.invalidUtf8 = true;
        yield rec;
      }
      groupStart += rows;
    }
  } finally {
    await handle.close();
  }
}
