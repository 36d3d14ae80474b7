// Compiles fixtures/contracts/*.sol with the npm `solc` package (pinned in package.json) and writes
// one artifact per contract (ABI, creation and runtime bytecode, compiler settings) to
// fixtures/contracts/build/ — or to the directory given as the first argument, which the test that
// checks the committed artifacts uses.
//
//   node scripts/build_contracts.mjs [OUT_DIR]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const srcDir = path.join(root, "fixtures", "contracts");
const outDir = path.resolve(process.argv[2] ?? path.join(srcDir, "build"));
const CONTRACTS = ["DrillToken", "DrillEscrow"];

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "shanghai", // accepted by both backends (py-evm and anvil)
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sources = {};
for (const name of CONTRACTS) {
  sources[`${name}.sol`] = { content: fs.readFileSync(path.join(srcDir, `${name}.sol`), "utf8") };
}

// Imports such as "@openzeppelin/contracts/..." are read from node_modules.
function findImports(importPath) {
  const candidate = path.join(root, "node_modules", importPath);
  if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  return { error: `import not found: ${importPath} (run npm ci)` };
}

const output = JSON.parse(
  solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports }),
);
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const name of CONTRACTS) {
  const c = output.contracts[`${name}.sol`][name];
  const artifact = {
    contractName: name,
    source: `fixtures/contracts/${name}.sol`,
    compiler: { name: "solc", version: solc.version(), settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion } },
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
  console.log(`wrote ${path.relative(root, path.join(outDir, name + ".json"))}`);
}
