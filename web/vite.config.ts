import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type UserConfig } from "vite";
import { dataServer } from "./data-server.ts";

const WEB_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The viewer's Vite config for a given data folder; tests and the CLI share it. */
export function viewerConfig(dataDir: string): UserConfig {
  // Loopback only unless HOST says otherwise: the data server exposes local files.
  const host = process.env.HOST ?? "127.0.0.1";
  return {
    root: WEB_DIR,
    // Relative base so `npm run build` output works from any folder of a static host.
    base: "./",
    plugins: [dataServer(dataDir)],
    server: { host },
    preview: { host },
  };
}

export default defineConfig(viewerConfig(path.resolve(process.env.DATA_DIR ?? path.join(WEB_DIR, "../output"))));
