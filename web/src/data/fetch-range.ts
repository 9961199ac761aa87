// Reading one byte span of a .bin file over HTTP. It always asks for a closed
// single range, even for a whole file: a 206 answer has a known length and is
// read into one buffer of that size, with no chunk list left for the GC (a 128
// MiB matrix must not cost twice that while it arrives). A server that ignores
// Range answers 200 with the whole file; that fallback streams the body and
// keeps only the wanted span, so a 4 GiB layer file never sits in memory.
// Every answer is checked against the size the meta promises, so a truncated
// file gives a clear message instead of garbage.

export class TruncatedFileError extends Error {
  override name = "TruncatedFileError";
}

export interface FileSpan {
  url: string;
  name: string; // for messages
  fileBytes: number; // the size the format promises
  start: number;
  length: number;
}

function sizeError(span: FileSpan, actual: number | string): TruncatedFileError {
  return new TruncatedFileError(
    `${span.name} has ${actual} bytes, expected ${span.fileBytes}: the file is truncated or does not match meta.json`,
  );
}

/**
 * The span's bytes. `into` (span.length bytes, e.g. an evicted matrix's) is
 * filled and handed back, moved, when the answer is a 206 byte stream; the
 * caller must hold no other view of it.
 */
export async function fetchSpan(span: FileSpan, into?: ArrayBuffer): Promise<ArrayBuffer> {
  const response = await fetch(span.url, { headers: { Range: `bytes=${span.start}-${span.start + span.length - 1}` } });
  if (response.status === 416) throw sizeError(span, totalSize(response) ?? "fewer");
  if (!response.ok) throw new Error(`${span.name}: HTTP ${response.status} ${response.statusText}`);
  if (response.status === 206) return readPartial(response, span, into);
  return readWhole(response, span);
}

// The file size a server states in Content-Range: "bytes a-b/size", or "bytes */size" with a 416.
function totalSize(response: Response): number | undefined {
  const total = /\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "")?.[1];
  return total === undefined ? undefined : Number(total);
}

async function readPartial(response: Response, span: FileSpan, into?: ArrayBuffer): Promise<ArrayBuffer> {
  const total = totalSize(response);
  if (total !== undefined && total !== span.fileBytes) {
    await response.body?.cancel();
    throw sizeError(span, total);
  }
  const buffer = await readExactly(response, span.length, into);
  if (buffer.byteLength !== span.length) throw sizeError(span, "fewer");
  return buffer;
}

/**
 * A body of known length, in one buffer of that length: a BYOB reader fills it
 * in place, so a 128 MiB matrix costs 128 MiB while it arrives (arrayBuffer()
 * gathers the body and then copies it). A shorter body gives a shorter buffer.
 */
async function readExactly(response: Response, length: number, into?: ArrayBuffer): Promise<ArrayBuffer> {
  const reader = byobReader(response);
  if (!reader) return response.arrayBuffer();
  let buffer = into?.byteLength === length ? into : new ArrayBuffer(length);
  let filled = 0;
  while (filled < length) {
    const { done, value } = await reader.read(new Uint8Array(buffer, filled, length - filled));
    if (value) buffer = value.buffer; // each read hands the buffer back, moved
    if (done || !value) break;
    filled += value.byteLength;
  }
  await reader.cancel(); // nothing more is wanted, whatever the server still sends
  return filled === length ? buffer : buffer.slice(0, filled);
}

function byobReader(response: Response): ReadableStreamBYOBReader | null {
  try {
    return response.body?.getReader({ mode: "byob" }) ?? null;
  } catch {
    return null; // a body that is not a byte stream
  }
}

async function readWhole(response: Response, span: FileSpan): Promise<ArrayBuffer> {
  const declared = response.headers.get("Content-Length");
  if (declared !== null && Number(declared) !== span.fileBytes) {
    await response.body?.cancel();
    throw sizeError(span, declared);
  }
  if (!response.body) throw new Error(`${span.name}: empty response`);
  const out = new Uint8Array(span.length);
  const end = span.start + span.length;
  const reader = response.body.getReader();
  let at = 0; // byte offset of the next chunk inside the file
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    copyOverlap(value, at, out, span.start, end);
    at += value.byteLength;
    // With a trusted Content-Length the rest of the file is not needed.
    if (declared !== null && at >= end) {
      await reader.cancel();
      return out.buffer;
    }
  }
  if (at !== span.fileBytes) throw sizeError(span, at);
  return out.buffer;
}

/** Copy the part of `chunk` (at file offset `at`) that falls inside [start, end) into `out`. */
function copyOverlap(chunk: Uint8Array, at: number, out: Uint8Array, start: number, end: number): void {
  const from = Math.max(start, at);
  const to = Math.min(end, at + chunk.byteLength);
  if (from < to) out.set(chunk.subarray(from - at, to - at), from - start);
}
