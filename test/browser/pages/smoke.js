// The built package exactly as published, loaded by URL with no bundler and no import map.
import { init } from "/dist/index.js";
import { publishSmokeCheck } from "./smoke-check.js";

publishSmokeCheck(init);
