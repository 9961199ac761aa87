// Raw HTTP requests: unlike fetch, node:http sends the path as written, so `..` and
// `%2e%2e` reach the server instead of being normalised away by the client.
import http from "node:http";

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function request(baseUrl: string, rawPath: string, options: { method?: string; range?: string } = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const headers = options.range === undefined ? {} : { Range: options.range };
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method: options.method ?? "GET", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}
