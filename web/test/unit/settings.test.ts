import { describe, expect, test } from "vitest";
import { DEFAULT_SETTINGS, settingsFromParams, settingsToParams } from "../../src/state/settings";

describe("display settings in the URL", () => {
  test("the defaults write nothing, so plain links stay short", () => {
    expect(settingsToParams(DEFAULT_SETTINGS, new URLSearchParams("sample=a")).toString()).toBe("sample=a");
  });

  test("every setting goes there and back", () => {
    const settings = {
      ...({ palette: "hot", opacity: 0.4, scale: "log", excludeSinks: false, collapseImage: false, selectWords: false } as const),
      ...({ atlas: false, curves: false, measure: "image_entropy" } as const),
    };
    const params = settingsToParams(settings, new URLSearchParams("sample=a"));
    expect(params.toString()).toBe(
      "sample=a&palette=hot&opacity=0.4&scale=log&nosinks=0&collapse=0&words=0&atlas=0&curves=0&measure=image_entropy",
    );
    expect(settingsFromParams(params)).toEqual(settings);
  });

  test("garbled values keep the defaults", () => {
    const params = new URLSearchParams("palette=pink&opacity=2&scale=cubic&nosinks=yes&atlas=no&measure=entropy");
    expect(settingsFromParams(params)).toEqual(DEFAULT_SETTINGS);
  });
});
