// Vite plugin: serves DATA_DIR under /data/ for `npm run dev` and `npm run preview`,
// with byte ranges and nothing outside DATA_DIR. /data/index.json is always generated
// from the sample folders, even if DATA_DIR holds an index.json, so the list is never stale.
import { existsSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Connect, Logger, Plugin, PreviewServer, ViteDevServer } from "vite";
import { listSamples } from "./server/sample-index.ts";
import { pathOfUrl, serveFile } from "./server/serve-files.ts";

const MOUNT = "/data/";

export function dataServer(dataDir: string): Plugin {
  const handler = dataHandler(dataDir);
  const install = (server: ViteDevServer | PreviewServer): void => {
    // Only a listening server announces: vitest runs this config without one.
    server.httpServer?.once("listening", () => announce(dataDir, server.config.logger));
    server.middlewares.use(handler);
  };
  return { name: "vav-data-server", configureServer: install, configurePreviewServer: install };
}

function announce(dataDir: string, logger: Logger): void {
  if (existsSync(dataDir)) logger.info(`  samples: ${dataDir} at ${MOUNT}`);
  else logger.warn(`  samples: ${dataDir} does not exist; run the extractor or set DATA_DIR`);
}

function dataHandler(dataDir: string): Connect.NextHandleFunction {
  return (req: IncomingMessage, res: ServerResponse, next: Connect.NextFunction) => {
    const urlPath = pathOfUrl(req.url);
    if (!urlPath.startsWith(MOUNT)) return next();
    const relative = urlPath.slice(MOUNT.length - 1); // keeps its leading "/"
    const answer = isIndexRead(req, relative) ? sendIndex(dataDir, req, res) : serveFile(dataDir, relative, req, res);
    answer.catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(String(error));
    });
  };
}

function isIndexRead(req: IncomingMessage, relative: string): boolean {
  return (req.method === "GET" || req.method === "HEAD") && relative === "/index.json";
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
