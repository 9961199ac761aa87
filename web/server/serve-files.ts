// GET/HEAD of the files inside one folder, with single byte ranges, streamed from disk.
// Used by the Vite plugin under /data/ and, in tests, as a plain static host.
import { createReadStream } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream";
import { parseRange } from "./byte-range.ts";
import { resolveInside } from "./safe-path.ts";

const CONTENT_TYPES: Record<string, string> = {
  ".bin": "application/octet-stream",
  ".json": "application/json; charset=utf-8",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".gif": "image/gif",
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

/** The path of a request's URL, still percent-encoded, without its query. */
export function pathOfUrl(url: string | undefined): string {
  const raw = url ?? "/";
  const query = raw.indexOf("?");
  return query === -1 ? raw : raw.slice(0, query);
}

/** Answers a request for `urlPath` (percent-encoded, relative to `root`, without the query). */
export async function serveFile(root: string, urlPath: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD" }).end();
    return;
  }
  const resolved = await resolveInside(root, urlPath);
  if (!resolved.ok) {
    res.writeHead(resolved.status, { "Content-Type": "text/plain" }).end(resolved.status === 403 ? "Forbidden" : "Not found");
    return;
  }
  sendRange(req, res, resolved.file, resolved.size);
}

function sendRange(req: IncomingMessage, res: ServerResponse, file: string, size: number): void {
  const range = parseRange(req.headers.range, size);
  // no-store: samples are rewritten in place (--overwrite) and the viewer keeps its own cache.
  const common = { "Accept-Ranges": "bytes", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };
  if (range.kind === "unsatisfiable") {
    res.writeHead(416, { ...common, "Content-Range": `bytes */${size}` }).end();
    return;
  }
  const [start, end] = range.kind === "part" ? [range.start, range.end] : [0, size - 1];
  res.writeHead(range.kind === "part" ? 206 : 200, {
    ...common,
    "Content-Type": contentTypeOf(file),
    "Content-Length": String(end - start + 1),
    ...(range.kind === "part" ? { "Content-Range": `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === "HEAD" || size === 0) {
    res.end();
    return;
  }
  // pipeline closes the file when the client aborts (the viewer cancels stale prefetches).
  pipeline(createReadStream(file, { start, end }), res, () => undefined);
}
