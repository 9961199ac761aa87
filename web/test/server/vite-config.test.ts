// The dev and preview servers expose local files, so they bind loopback unless HOST says otherwise.
import { afterEach, describe, expect, test, vi } from "vitest";
import { viewerConfig } from "../../vite.config.ts";

afterEach(() => vi.unstubAllEnvs());

describe("viewerConfig", () => {
  test("binds 127.0.0.1 when HOST is not set", () => {
    vi.stubEnv("HOST", undefined);
    const config = viewerConfig("/tmp/data");
    expect(config.server?.host).toBe("127.0.0.1");
    expect(config.preview?.host).toBe("127.0.0.1");
  });

  test("binds HOST when it is set", () => {
    vi.stubEnv("HOST", "0.0.0.0");
    const config = viewerConfig("/tmp/data");
    expect(config.server?.host).toBe("0.0.0.0");
    expect(config.preview?.host).toBe("0.0.0.0");
  });

  test("builds with relative asset paths for static hosts", () => {
    expect(viewerConfig("/tmp/data").base).toBe("./");
  });
});
