// Vite plugin: serves DATA_DIR under /data/ for `npm run dev` and `npm run preview`,
// with byte ranges and nothing outside DATA_DIR. /data/index.json is always generated
// from the sample folders, even if DATA_DIR holds an index.json, so the list is never stale.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Connect, Plugin } from "vite";
import { listSamples } from "./server/sample-index.ts";
import { serveFile } from "./server/serve-files.ts";

export const DATA_MOUNT = "/data";

export function dataServer(dataDir: string): Plugin {
  const handler = dataHandler(dataDir);
  return {
    name: "vav-data-server",
    configureServer: (server) => void server.middlewares.use(DATA_MOUNT, handler),
    configurePreviewServer: (server) => void server.middlewares.use(DATA_MOUNT, handler),
  };
}

function dataHandler(dataDir: string): Connect.NextHandleFunction {
  return (req: IncomingMessage, res: ServerResponse) => {
    const answer = isIndexRead(req) ? sendIndex(dataDir, req, res) : serveFile(dataDir, req, res);
    answer.catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(String(error));
    });
  };
}

function isIndexRead(req: IncomingMessage): boolean {
  return (req.method === "GET" || req.method === "HEAD") && req.url?.split("?")[0] === "/index.json";
}

async function sendIndex(dataDir: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = JSON.stringify(await listSamples(dataDir), null, 1);
  res.writeHead(200, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(body)),
    "Cache-Control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
