// `npm run bench [-- <name>...]`: runs the named benchmarks (default: all). Each prints ratios against a reference
// measured in the same run, never a bare time.
const BENCHES: Record<string, () => Promise<unknown>> = {
  config: () => import("./config.js"),
  store: () => import("./store.js"),
  dataprep: () => import("./dataprep.js"),
  compute: () => import("./compute.js"),
  recovery: () => import("./recovery.js"),
};

const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(BENCHES);
for (const name of names) {
  const load = BENCHES[name];
  if (!load) {
    console.error(`unknown benchmark ${name}; choose from ${Object.keys(BENCHES).join(", ")}`);
    process.exit(1);
  }
  console.log(`\n=== ${name} ===`);
  await load();
}
