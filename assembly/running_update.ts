// Running statistics update after a training forward, as torch: with factor f,
// running_mean = (1 - f) * running_mean + f * mean and
// running_var = (1 - f) * running_var + f * variance * unbias (unbias = n / (n - 1)), in f64.
import { at4, at8 } from "./widen";

/** Channels [c0, c1): f64 batch `mean`/`variance` in, f32 `runningMean`/`runningVar` updated in place. */
export function updateRunning(
  c0: i32, c1: i32, mean: usize, variance: usize, unbias: f64, factor: f64, runningMean: usize, runningVar: usize,
): void {
  const keep = 1.0 - factor;
  for (let ch = c0; ch < c1; ch++) {
    const rm = runningMean + at4(ch), rv = runningVar + at4(ch);
    store<f32>(rm, <f32>(keep * <f64>load<f32>(rm) + factor * load<f64>(mean + at8(ch))));
    store<f32>(rv, <f32>(keep * <f64>load<f32>(rv) + factor * load<f64>(variance + at8(ch)) * unbias));
  }
}
