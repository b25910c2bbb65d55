// npm run demo: serves the demo and the built package it imports on 127.0.0.1, under the same
// strict CSP the browser tests check. Port: $PORT, else 8080; a free one if that is taken.
import { fileURLToPath } from "node:url";
import { STRICT_CSP, startServer } from "../test/browser/server.mjs";

const options = {
  root: fileURLToPath(new URL("..", import.meta.url)),
  // the Train panel's training code, chart code and digits (examples/mnist/)
  allow: ["/dist/", "/demo/", "/examples/mnist/mlp.js", "/examples/mnist/digits.js", "/examples/mnist/charts.js", "/examples/mnist/data/digits.bin.gz"],
  headers: { "Content-Security-Policy": STRICT_CSP },
  home: "/demo/",
};
const port = Number(process.env.PORT ?? 8080);

let server;
try {
  server = await startServer({ ...options, port });
} catch (error) {
  if (/** @type {NodeJS.ErrnoException} */ (error).code !== "EADDRINUSE") throw error;
  console.log(`Port ${port} is in use; picking a free one.`);
  server = await startServer({ ...options, port: 0 });
}
console.log(`wasm-batchnorm demo: ${server.url}/demo/  (Ctrl+C to stop)`);
