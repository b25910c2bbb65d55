// Module resolve hook (node:module register) used only to load tfjs-core's gradient definitions.
// tfjs-core's CommonJS bundle (what Node imports) leaves the gradients out; they ship only as ES
// modules in dist/ whose relative imports have no file extension ("./gradients/Abs_grad"), which
// Node's ESM loader rejects. This hook appends ".js" to such imports inside @tensorflow/tfjs-core/dist.
// Those modules register into tfjs's process-global registries, shared with the CommonJS bundle.
export async function resolve(specifier, context, next) {
  if (context.parentURL?.includes("/@tensorflow/tfjs-core/dist/") && /^\.\.?\//.test(specifier) && !/\.[cm]?js$/.test(specifier)) {
    return next(`${specifier}.js`, context);
  }
  return next(specifier, context);
}
