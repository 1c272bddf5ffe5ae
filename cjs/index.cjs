// CommonJS entry (the "require" export condition). netbpf is an ES module: a Node with require(esm) (20.19+,
// 22.12+) loads it from here; an older one gets this netbpf message instead of its own ERR_REQUIRE_ESM.
'use strict';

class NetbpfError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'NetbpfError';
    this.kind = 'runtime';
  }
}

try {
  module.exports = require('../dist/index.js');
} catch (err) {
  if (err && (err.code === 'ERR_REQUIRE_ESM' || err.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
    throw new NetbpfError(`netbpf is an ES module and this Node (${process.version}) cannot require() it: use import { retrans } from 'netbpf', or const netbpf = await import('netbpf') from CommonJS, or Node >= 20.19 (require of ES modules)`, { cause: err });
  }
  throw err;
}
