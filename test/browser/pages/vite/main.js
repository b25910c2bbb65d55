// The package imported by name, as an application would; the Vite test resolves the name to the
// repository root, so the package.json "exports" decide which file is bundled.
import { init } from "wasm-batchnorm";
import { publishSmokeCheck } from "../smoke-check.js";

publishSmokeCheck(init);
