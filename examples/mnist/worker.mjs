// A worker of `npm run example:mnist -- --jobs=N`: loads the backend and the digits once, then runs
// the tasks it is sent (experiments.js) and posts each result back.
import { parentPort, workerData } from "node:worker_threads";
import { init } from "../../dist/index.js";
import { loadSplit } from "./data.mjs";
import { toFloat } from "./digits.js";
import { runTask } from "./experiments.js";

// one thread: a [60, 100] BN call is too small to split, and --jobs decides how many cores run
const bn = await init({ backend: workerData.backend, threads: 1 });
const split = loadSplit();
const data = { train: toFloat(split.train), test: toFloat(split.test) };
parentPort.on("message", (task) => parentPort.postMessage(runTask(bn, data, task)));
parentPort.postMessage("ready");
