#!/usr/bin/env node
// Compile the ticket contracts with npm solc (pinned in package.json) and write
// <Name>.json = {contractName, compiler, evmVersion, abi, bytecode, deployedBytecode} next to
// each source. The JSON files are committed; run `npm run compile` after editing a .sol file.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const HERE = __dirname;
const SOURCES = ['TicketNFT.sol', 'SeasonPass.sol'];
const EVM_VERSION = 'cancun';

function input() {
  const sources = {};
  for (const file of SOURCES) {
    sources[file] = { content: fs.readFileSync(path.join(HERE, file), 'utf8') };
  }
  return {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
}

function main() {
  const output = JSON.parse(solc.compile(JSON.stringify(input())));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  for (const file of SOURCES) {
    for (const [name, c] of Object.entries(output.contracts[file])) {
      if (!c.evm.bytecode.object) continue; // interfaces
      const artifact = {
        contractName: name,
        source: file,
        compiler: `solc ${solc.version()}`,
        evmVersion: EVM_VERSION,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      };
      const out = path.join(HERE, `${name}.json`);
      fs.writeFileSync(out, JSON.stringify(artifact, null, 1) + '\n');
      console.log(`wrote ${path.relative(process.cwd(), out)}`);
    }
  }
}

main();
