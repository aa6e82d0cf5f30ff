// Prepared datasets in the GitHub Actions cache, keyed by their hash, so a later job (or the next run of the
// same inputs) gets the files without the store round trip. Outside Actions, or when the cache service is not
// reachable from this step, it quietly does nothing: the store is the source of truth either way.
import * as cache from "@actions/cache";
import * as core from "@actions/core";

export function datasetCacheKey(hash: string): string {
  return `ftune-dataset-${hash}`;
}

/** True when the dataset folder was restored from the Actions cache. */
export async function restorePrepared(hash: string, dir: string): Promise<boolean> {
  if (!cache.isFeatureAvailable()) return false;
  try {
    return (await cache.restoreCache([dir], datasetCacheKey(hash))) !== undefined;
  } catch (e) {
    core.warning(`Actions cache restore of dataset ${hash.slice(0, 12)} failed (${(e as Error).message}); using the store`);
    return false;
  }
}

export async function savePrepared(hash: string, dir: string): Promise<boolean> {
  if (!cache.isFeatureAvailable()) return false;
  try {
    return (await cache.saveCache([dir], datasetCacheKey(hash))) !== -1;
  } catch (e) {
    // Another job saved the same key first, or the service hiccuped: the store has the data.
    core.info(`Actions cache save of dataset ${hash.slice(0, 12)} skipped: ${(e as Error).message}`);
    return false;
  }
}
