// The package imported by name, as an application would. The test copies this folder next to a
// node_modules/ holding the packed package, so "exports" and "files" decide what gets bundled.
import { init } from "wasm-batchnorm";
import { publishSmokeCheck } from "../smoke-check.js";

publishSmokeCheck(init);
