import { defineConfig } from "vite";

// Relative base so `npm run build` output works from any folder of a static host.
export default defineConfig({
  base: "./",
  server: { host: "127.0.0.1" },
  preview: { host: "127.0.0.1" },
});
