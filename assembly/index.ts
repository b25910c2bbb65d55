// Entry point: every kernel the TypeScript side calls. All take byte pointers into linear memory,
// element counts and a channel range [c0, c1), and allocate nothing (memory is owned by src/memory.ts).
export { statsChannelsFirst, STATS_FAST, STATS_WIDE, STATS_EXACT } from "./stats_channels_first";
export { statsChannelsLast } from "./stats_channels_last";
export { forwardCoefficients, maskCoefficients, splitMeans, backwardCoefficients, COEF_ROWS } from "./coefficients";
export { normalizeChannelsFirst } from "./normalize_channels_first";
export { normalizeChannelsLast } from "./normalize_channels_last";
export { forwardTrainChannelsFirst } from "./forward_train_channels_first";
export { backwardReduceChannelsFirst } from "./backward_reduce_channels_first";
export { backwardReduceChannelsLast } from "./backward_reduce_channels_last";
export { backwardDxChannelsFirst, backwardDxEvalChannelsFirst } from "./backward_dx_channels_first";
export { backwardDxChannelsLast, backwardDxEvalChannelsLast } from "./backward_dx_channels_last";

/** First byte the JS allocator may hand out. */
export function heapBase(): usize {
  return __heap_base;
}
export { updateRunning } from "./running_update";
