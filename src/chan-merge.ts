// Chan et al.'s parallel formula for merging the statistics (count, mean, M2 = sum of squared
// deviations) of two sets of values, in float64:
//   delta = mean_b - mean_a, n = n_a + n_b, mean = mean_a + delta * n_b / n,
//   M2 = M2_a + M2_b + delta^2 * n_a * n_b / n.
// See: Chan, Golub, LeVeque, "Updating formulae and a pairwise algorithm for computing sample variances", 1979.

/** Merges a set of `nb` values (mean `meanB`, M2 `m2B`) into entry i of `mean`/`m2`, which holds `na` values. */
export function chanMerge(mean: Float64Array, m2: Float64Array, i: number, na: number, nb: number, meanB: number, m2B: number): void {
  const n = na + nb;
  const delta = meanB - mean[i];
  mean[i] += (delta * nb) / n;
  m2[i] += m2B + ((delta * delta * na) / n) * nb;
}
