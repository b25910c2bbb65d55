// @ts-check
// The one static file server for the browser tests and the demo (`npm run demo`), so it is plain
// JavaScript: Node 20 runs demo/serve.mjs without a TypeScript loader. It serves only the listed
// folders of the repository, on 127.0.0.1, with the headers a test asks for (e.g. a CSP).
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";

/** Module scripts must come with a JavaScript MIME type, or the browser refuses them. */
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** The CSP the tests and the demo run under: external scripts only, wasm compilation allowed. */
export const STRICT_CSP = "script-src 'self' 'wasm-unsafe-eval'";

/**
 * @typedef {object} ServeOptions
 * @property {string} root directory the URL paths are relative to
 * @property {string[]} allow URL path prefixes that may be served, e.g. "/dist/"; everything else is 404
 * @property {number} [port] 0 (the default) picks a free port
 * @property {Record<string, string>} [headers] added to every response
 * @property {string} [home] where "/" redirects to
 *
 * @typedef {object} StaticServer
 * @property {string} url origin, e.g. "http://127.0.0.1:41234" (no trailing slash)
 * @property {() => Promise<void>} close
 */

/**
 * Starts serving; rejects (e.g. with EADDRINUSE) if it cannot listen.
 * @param {ServeOptions} options
 * @returns {Promise<StaticServer>}
 */
export async function startServer({ root, allow, port = 0, headers = {}, home }) {
  const base = normalize(root + sep);
  const server = createServer(async (req, res) => {
    /** @type {(status: number, extra?: Record<string, string>, body?: string | Buffer) => void} */
    const send = (status, extra = {}, body = "") => {
      res.writeHead(status, { ...headers, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", ...extra });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, { Allow: "GET, HEAD" });
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      return send(400);
    }
    if (path === "/" && home) return send(302, { Location: home });
    if (path.endsWith("/")) path += "index.html";
    const file = normalize(join(base, path));
    // normalize() resolves "..", so this also rejects paths that climb out of an allowed folder
    if (!file.startsWith(base) || !allow.some((prefix) => file.startsWith(join(base, prefix)))) return send(404);
    try {
      if (!(await stat(file)).isFile()) return send(404);
      const body = await readFile(file);
      send(200, { "Content-Type": TYPES[/** @type {keyof TYPES} */ (extname(file))] ?? "application/octet-stream" }, body);
    } catch {
      send(404);
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(undefined));
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("server: no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
