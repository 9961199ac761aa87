// A bare static host for the built site: files only, byte ranges, `/` means index.html,
// and no Vite anywhere, as on a plain web server.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pathOfUrl, serveFile } from "../../server/serve-files.ts";
import type { RunningServer } from "./harness.ts";

export async function startStaticHost(root: string): Promise<RunningServer> {
  const server = http.createServer((req, res) => {
    const urlPath = pathOfUrl(req.url);
    serveFile(root, urlPath.endsWith("/") ? `${urlPath}index.html` : urlPath, req, res).catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // the browser keeps idle sockets open, and close() would wait for them
    });
  return { url: `http://127.0.0.1:${port}/`, close };
}
