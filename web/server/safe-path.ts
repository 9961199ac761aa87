// Maps a URL path onto a regular file inside a root folder, and nowhere else.
// Every refusal is decided here so the file server and the sample listing agree.
// Hidden names (a leading ".") are never served: the extractor writes a sample
// into a hidden folder and renames it when complete, and dotfiles are private.
import { realpath, stat } from "node:fs/promises";
import path from "node:path";

export type Resolved =
  | { ok: true; file: string; size: number }
  | { ok: false; status: 403 | 404 };

const FORBIDDEN: Resolved = { ok: false, status: 403 };
const NOT_FOUND: Resolved = { ok: false, status: 404 };

/** `urlPath` is the part after the mount point, still percent-encoded, without the query. */
export async function resolveInside(root: string, urlPath: string): Promise<Resolved> {
  const relative = decodeRelative(urlPath);
  if (relative === null) return FORBIDDEN;
  if (isHiddenPath(relative)) return NOT_FOUND;
  const realRoot = await realpathOrNull(root);
  if (realRoot === null) return NOT_FOUND;
  const real = await realpathOrNull(path.join(realRoot, relative));
  if (real === null) return NOT_FOUND;
  // Checked on the real path, so a symlink inside the root cannot lead outside it, nor into a hidden folder.
  if (!isInside(realRoot, real)) return FORBIDDEN;
  if (isHiddenPath(path.relative(realRoot, real).split(path.sep).join("/"))) return NOT_FOUND;
  const info = await stat(real);
  // Folders are never listed: a static host has no listing either.
  return info.isFile() ? { ok: true, file: real, size: info.size } : NOT_FOUND;
}

/** The decoded path relative to the root, or null when it tries to leave it. */
function decodeRelative(urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null; // malformed percent-encoding
  }
  const relative = decoded.replace(/^\//, "");
  if (decoded.includes("\0") || relative.includes("\\") || path.isAbsolute(relative)) return null;
  if (relative.split("/").some((segment) => segment === "..")) return null;
  return relative;
}

/** A file or folder name that is never listed nor served. */
export function isHiddenName(name: string): boolean {
  return name.startsWith(".");
}

function isHiddenPath(relative: string): boolean {
  return relative.split("/").some(isHiddenName);
}

function isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  const leaves = relative === ".." || relative.startsWith(`..${path.sep}`);
  return !leaves && !path.isAbsolute(relative);
}

async function realpathOrNull(target: string): Promise<string | null> {
  try {
    return await realpath(target);
  } catch {
    return null;
  }
}
