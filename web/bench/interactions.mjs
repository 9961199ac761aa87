// Timed interactions with the viewer, measured inside the page against the app's
// `vav:draw` mark: from the input event's timestamp to the mark (the app's work) and to
// the next animation frame after it (when the result can be on screen).

const DRAW_TIMEOUT_MS = 60_000;
// A click that lands on the selected token or between cells draws nothing; give up soon.
const CLICK_TIMEOUT_MS = 3_000;
const inflight = new WeakMap();

/** Loads the viewer and returns ms from navigation start to `vav:first-heatmap`. */
export async function openViewer(page, url) {
  trackRequests(page);
  await page.goto(url);
  await page.waitForFunction(
    () => performance.getEntriesByName("vav:first-heatmap").length > 0 || !document.getElementById("error")?.hidden,
    undefined,
    { timeout: DRAW_TIMEOUT_MS },
  );
  const error = await page.evaluate(() => (document.getElementById("error")?.hidden ? null : document.getElementById("error")?.textContent));
  if (error) throw new Error(`the viewer shows an error: ${error}`);
  await installProbe(page);
  return page.evaluate(() => performance.getEntriesByName("vav:first-heatmap")[0].startTime);
}

/** Clicks `count` spread-out points of an element; returns the latencies of the clicks that redrew. */
export async function clickLatencies(page, selector, count) {
  const points = await clickablePoints(page, selector, count);
  const result = { draw: [], frame: [], missed: 0 };
  for (const [x, y] of points) {
    await page.mouse.click(x, y);
    record(result, await nextLatency(page));
  }
  return result;
}

/**
 * Warm: ArrowRight once the prefetch of the next layer has landed. Cold: the layer slider
 * jumps to a layer not visited yet, so nothing of it is cached. Returns input → draw in ms.
 */
export async function layerSwitch(page, kind, layers) {
  const times = [];
  for (const layer of layers) {
    await waitForNetworkIdle(page);
    const latency = kind === "warm" ? await pressKey(page, "ArrowRight") : await jumpToLayer(page, layer);
    if (latency.missed) throw new Error(`no redraw after switching to layer ${layer}`);
    times.push(latency.draw);
  }
  return times;
}

/** Presses a key and returns its latency record (its redraw, or `missed`). */
export async function pressKey(page, key) {
  await page.keyboard.press(key);
  return nextLatency(page);
}

/** Resolves after `quietMs` without a request in flight (the worker's prefetches included). */
export async function waitForNetworkIdle(page, quietMs = 500, timeoutMs = DRAW_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    if (inflight.get(page).size > 0) quietSince = Date.now();
    else if (Date.now() - quietSince >= quietMs) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the network did not go idle");
}

function trackRequests(page) {
  if (inflight.has(page)) return;
  const open = new Set();
  inflight.set(page, open);
  page.on("request", (request) => open.add(request));
  page.on("requestfinished", (request) => open.delete(request));
  page.on("requestfailed", (request) => open.delete(request));
}

function record(result, latency) {
  if (latency.missed) return void result.missed++;
  result.draw.push(latency.draw);
  result.frame.push(latency.frame);
}

async function jumpToLayer(page, layer) {
  await page.evaluate((target) => window.__vavJumpToLayer(target), layer);
  return nextLatency(page);
}

/** Waits for the probe's record of the latest input. */
async function nextLatency(page) {
  const handle = await page.waitForFunction(() => window.__vavLatency?.done && window.__vavLatency, undefined, { timeout: DRAW_TIMEOUT_MS + 5_000 });
  const latency = await handle.jsonValue();
  await page.evaluate(() => (window.__vavLatency = null));
  return latency;
}

/**
 * In the page: on every pointerdown or keydown (capture phase, before the app sees it),
 * watch frame by frame for the first `vav:draw` mark after the event.
 */
function installProbe(page) {
  return page.evaluate(([clickTimeoutMs, timeoutMs]) => {
    if (window.__vavWatch) return;
    window.__vavWatch = (inputAt, giveUpMs) => {
      window.__vavLatency = { done: false };
      const check = () => {
        const draw = performance.getEntriesByName("vav:draw").find((mark) => mark.startTime >= inputAt);
        const now = performance.now();
        if (draw) window.__vavLatency = { done: true, missed: false, draw: draw.startTime - inputAt, frame: now - inputAt };
        else if (now - inputAt > giveUpMs) window.__vavLatency = { done: true, missed: true };
        else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    };
    addEventListener("pointerdown", (event) => window.__vavWatch(event.timeStamp, clickTimeoutMs), { capture: true });
    addEventListener("keydown", (event) => window.__vavWatch(event.timeStamp, timeoutMs), { capture: true });
    window.__vavJumpToLayer = (layer) => {
      const slider = document.getElementById("layer");
      slider.value = String(layer);
      window.__vavWatch(performance.now(), timeoutMs);
      slider.dispatchEvent(new Event("input", { bubbles: true }));
      slider.dispatchEvent(new Event("change", { bubbles: true }));
    };
  }, [CLICK_TIMEOUT_MS, DRAW_TIMEOUT_MS]);
}

/** Up to `count` points spread over the visible part of the element where it is on top. */
function clickablePoints(page, selector, count) {
  return page.evaluate(
    ([sel, wanted]) => {
      const element = document.querySelector(sel);
      if (!element) throw new Error(`no ${sel} in the page`);
      const box = element.getBoundingClientRect();
      const [left, top] = [Math.max(box.left, 0), Math.max(box.top, 0)];
      const [right, bottom] = [Math.min(box.right, innerWidth), Math.min(box.bottom, innerHeight)];
      const points = [];
      const step = Math.max(4, Math.sqrt(((right - left) * (bottom - top)) / (wanted * 4)));
      for (let y = top + step / 2; y < bottom; y += step)
        for (let x = left + step / 2; x < right; x += step) if (document.elementFromPoint(x, y) === element) points.push([x, y]);
      // Every k-th point, so the chosen ones cover the whole element rather than its top.
      const stride = Math.max(1, Math.floor(points.length / wanted));
      return points.filter((_, i) => i % stride === 0).slice(0, wanted);
    },
    [selector, count],
  );
}

/**
 * Milliseconds of `runs` PNG exports of the current view at `scale` (the
 * button's path: figure assembly, canvas paint and PNG encoding), with or
 * without the token strip, each ending when the PNG blob exists.
 */
export async function exportTimes(page, scale, runs, withTokens) {
  return page.evaluate(
    async ([s, n, tokens]) => {
      const times = [];
      for (let run = 0; run < n; run++) {
        const start = performance.now();
        const file = await window.vav.exportFigure("png", s, tokens);
        if (!file || file.blob.size === 0) throw new Error("the export made no PNG");
        times.push(performance.now() - start);
      }
      return times;
    },
    [scale, runs, withTokens],
  );
}
