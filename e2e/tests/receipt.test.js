// Verifiable receipts: `verity-node receipt fetch` gets a final job's receipt from a real dev
// node (headers, GRANDPA justification, storage proofs), `verity-node receipt verify` checks it
// offline against the dev chain spec and re-runs the model; tampered receipts are refused, each
// with its reason.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, finalizedNumber, waitFor, rpc, NODE_BIN } from '../lib/node.js';
import { startWorker, workerRun, EXAMPLES } from '../lib/worker.js';
import { BLOCKS, connect, keyring, submitJob, waitForReceipt, stopAll } from '../lib/chain.js';

const UNIT = 1_000_000_000_000n;
const MODEL = EXAMPLES.digits_cnn;

/** Run `verity-node receipt ...`: { code, stdout, stderr }. */
function receiptCmd(args) {
  const r = spawnSync(NODE_BIN, ['receipt', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  if (r.error) throw r.error;
  if (r.status === null) throw new Error(`verity-node receipt ${args.join(' ')}: killed by ${r.signal}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Flip one byte (hex digits at byte `at`) of a 0x-hex string. */
function flipByte(hex, at) {
  const i = 2 + 2 * at;
  const b = (parseInt(hex.slice(i, i + 2), 16) ^ 0x01).toString(16).padStart(2, '0');
  return hex.slice(0, i) + b + hex.slice(i + 2);
}

describe('receipts', () => {
  let worker, node, api, dir, file, job, expected, receipt;

  before(async () => {
    await cryptoWaitReady();
    dir = mkdtempSync(join(tmpdir(), 'verity-receipts-'));
    worker = await startWorker('receipt-worker');
    node = await startNode('receipt-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    api = await connect(node);
    expected = workerRun(MODEL.model, MODEL.input);
    const charlie = keyring().addFromUri('//Charlie');
    ({ job } = await submitJob(api, charlie, expected.model, readFileSync(MODEL.input), 2n * UNIT));
    ({ receipt } = await waitForReceipt(api, job, `job ${job} final (logs: ${node.logFile}, ${worker.logFile})`, BLOCKS(34)));
    const closedAt = receipt.closedAt.toNumber();
    await waitFor(`block #${closedAt} finalized`, async () => (await finalizedNumber(node.rpcPort)) >= closedAt, { timeoutMs: BLOCKS(3) });
    file = join(dir, 'receipt.json');
  }, { timeout: 420_000 });

  after(async () => {
    if (api) await api.disconnect();
    await stopAll(node, worker);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('fetch writes a receipt whose claims are the chain\'s record', () => {
    const r = receiptCmd(['fetch', '--rpc', `http://127.0.0.1:${node.rpcPort}`, '--job', String(job), '--out', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`receipt of job ${job} \\(final\\) written`));
    const json = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(json.format, 'verity-receipt/1');
    assert.equal(json.claimed.outcome, 'final');
    assert.equal(json.claimed.output, receipt.output.toHex());
    assert.equal(json.claimed.trace_root, receipt.traceRoot.unwrap().toHex());
    assert.equal(json.headers.length, json.finalized.number, 'headers 1..=F');
    assert.ok(json.finalized.number >= receipt.closedAt.toNumber());
  });

  test('verify accepts it offline against the dev chain spec and re-runs the model', async () => {
    const r = receiptCmd(['verify', file, '--chain', 'dev', '--allow-dev-keys', '--model', MODEL.model]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^warning: chain "verity_dev" is finalized by public development keys \(\/\/Alice\) \(--allow-dev-keys\)$/m);
    // The genesis it computed from the chain spec is the node's.
    const genesis = await rpc(node.rpcPort, 'chain_getBlockHash', [0]);
    assert.match(r.stdout, new RegExp(`receipt verified against chain "verity_dev" \\(genesis ${genesis}\\)`));
    assert.match(r.stdout, /outcome: +final/);
    // The output the verifier proved equals what the worker computes locally.
    const out = r.stdout.match(/output: +(0x[0-9a-f]*)/)[1];
    assert.equal(out, expected.output);
    assert.match(r.stdout, new RegExp(`same output and trace root ${expected.trace_root}`));
    assert.match(r.stdout, /GRANDPA justification, set 0, 1 voters/);
  });

  // Each tampering is refused with its own reason (exit 1, one line on stderr).
  const tampered = [
    ['the claimed output', (j) => { j.claimed.output = flipByte(j.claimed.output, 0); },
      /the claimed output 0x[0-9a-f]+ differs from the output proven on chain/],
    ['a node of the receipt\'s storage proof', (j) => { j.receipt_proof.nodes[0] = flipByte(j.receipt_proof.nodes[0], 3); },
      /the receipt proof does not match the state root of block #\d+/],
    ['a node of the job record\'s storage proof', (j) => { const n = j.job_proof.nodes; n[n.length - 1] = flipByte(n[n.length - 1], 5); },
      /the job proof does not match the state root of block #\d+/],
    ['a header in the middle of the chain', (j) => { const k = Math.floor(j.headers.length / 2); j.headers[k] = flipByte(j.headers[k], 4); },
      /header #\d+ does not extend header #\d+: broken chain/],
    ['the last header (its state root)', (j) => { const k = j.headers.length - 1; j.headers[k] = flipByte(j.headers[k], 40); },
      /the justification finalizes block #\d+, not the last header/],
    ['a signature in the justification', (j) => { j.justification = flipByte(j.justification, 100); },
      /the justification does not prove block #\d+ final: .*signature/i],
  ];
  for (const [what, tamper, reason] of tampered) {
    test(`a receipt with a tampered ${what} is refused`, () => {
      const json = JSON.parse(readFileSync(file, 'utf8'));
      tamper(json);
      const bad = join(dir, 'tampered.json');
      writeFileSync(bad, JSON.stringify(json));
      const r = receiptCmd(['verify', bad, '--chain', 'dev', '--allow-dev-keys']);
      assert.equal(r.code, 1, `accepted: ${r.stdout}`);
      const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('warning: '));
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0], reason);
    });
  }

  test('no chain is trusted by default, nor one finalized by public development keys', () => {
    let r = receiptCmd(['verify', file]);
    assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
    assert.match(r.stderr, /--chain/);
    r = receiptCmd(['verify', file, '--chain', 'dev']);
    assert.equal(r.code, 1, `accepted: ${r.stdout}`);
    assert.match(r.stderr, /^error: chain "verity_dev" is finalized by public development keys \(\/\/Alice\): anyone can sign its blocks, so a receipt proves nothing; --allow-dev-keys to check one of a local dev or test chain anyway$/m);
  });

  test('a receipt is refused against another chain\'s spec, and with another model file', () => {
    let r = receiptCmd(['verify', file, '--chain', 'local', '--allow-dev-keys']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /header #1 does not extend the genesis of the chain specification/);
    r = receiptCmd(['verify', file, '--chain', 'dev', '--allow-dev-keys', '--model', EXAMPLES.digits_mlp.model]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the model file is model 0x[0-9a-f]+, the job ran model 0x[0-9a-f]+/);
  });

  test('fetch refuses an unknown job and an unreachable node with one line', () => {
    let r = receiptCmd(['fetch', '--rpc', `http://127.0.0.1:${node.rpcPort}`, '--job', '999999', '--out', join(dir, 'x.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /job 999999 is unknown at the finalized block/);
    r = receiptCmd(['fetch', '--rpc', 'http://127.0.0.1:1', '--job', String(job), '--out', join(dir, 'x.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to the node at 127\.0\.0\.1:1/);
  });
});
