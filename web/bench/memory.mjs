// Peak memory of one tab: JS heap and ArrayBuffer backing stores of the page and its
// workers (CDP Runtime.getHeapUsage, sampled), and the renderer's peak RSS from /proc.
import { readFileSync, readdirSync } from "node:fs";

const SAMPLE_EVERY_MS = 250;

/** Call before the page navigates, so its workers are attached as they start. */
export async function startMemoryMonitor(page) {
  const cdp = await page.context().newCDPSession(page);
  const workers = await attachWorkers(cdp);
  const peak = { jsHeap: 0, arrayBuffers: 0 };
  const sample = async () => {
    const usages = await Promise.all([cdp.send("Runtime.getHeapUsage"), ...[...workers.sessions].map((s) => workers.send(s, "Runtime.getHeapUsage"))]);
    const live = usages.filter(Boolean);
    peak.jsHeap = Math.max(peak.jsHeap, sum(live.map((u) => u.usedSize)));
    peak.arrayBuffers = Math.max(peak.arrayBuffers, sum(live.map((u) => u.backingStorageSize ?? 0)));
  };
  const timer = setInterval(() => void sample().catch(() => undefined), SAMPLE_EVERY_MS);
  return {
    stop: async () => {
      clearInterval(timer);
      await sample();
      return peak;
    },
  };
}

/**
 * Playwright gives no handle on a dedicated worker's CDP session, so attach to workers
 * through the page's own session (non-flat) and talk to them by message.
 */
async function attachWorkers(cdp) {
  const sessions = new Set();
  const pending = new Map();
  let nextId = 0;
  cdp.on("Target.attachedToTarget", (e) => e.targetInfo.type === "worker" && sessions.add(e.sessionId));
  cdp.on("Target.detachedFromTarget", (e) => sessions.delete(e.sessionId));
  cdp.on("Target.receivedMessageFromTarget", (e) => {
    const message = JSON.parse(e.message);
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  });
  await cdp.send("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  const send = (sessionId, method) =>
    new Promise((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      cdp.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method }) }).catch(() => resolve(null));
    });
  return { sessions, send };
}

/** Largest VmHWM among the renderer processes of browsers this process launched, in bytes. */
export function rendererPeakRss() {
  const children = childrenByParent();
  const renderers = descendants(process.pid, children).filter((pid) => readProc(pid, "cmdline").includes("--type=renderer"));
  const peaks = renderers.map((pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readProc(pid, "status"))?.[1] ?? 0) * 1024);
  return Math.max(0, ...peaks);
}

function childrenByParent() {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    // The parent pid is the 4th field of stat, after the parenthesised command name.
    const ppid = Number(readProc(entry, "stat").split(") ")[1]?.split(" ")[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(entry));
  }
  return children;
}

function descendants(pid, children) {
  return (children.get(pid) ?? []).flatMap((child) => [child, ...descendants(child, children)]);
}

function readProc(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return ""; // the process ended meanwhile
  }
}

const sum = (values) => values.reduce((a, b) => a + b, 0);
