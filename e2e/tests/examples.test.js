// The runnable examples of examples/ (docs/REQUESTER.md, OPERATOR.md, WATCHER.md), run as a
// newcomer runs them: `node examples/<script>` as child processes against real dev nodes with
// real inference workers. Their printed output is checked against `verity-worker run` and
// against the chain.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { REPO, startNode, rpc, waitFor, freePort } from '../lib/node.js';
import { startWorker, workerRun, EXAMPLES } from '../lib/worker.js';
import { startFraudNetwork, stopAll } from '../lib/chain.js';

const UNIT = 1_000_000_000_000n;
const PRICE = UNIT; // Alice's price for the example models (genesis preset)
const COLLATERAL = 100n * UNIT; // JobCollateral
const PROVER_SHARE_PERCENT = 50n; // ProverShare
const MODEL = EXAMPLES.digits_cnn;

/** `node examples/<script> ...args` from the repository root: { code, stdout, stderr }. */
function example(script, args, { timeoutMs = 60_000 } = {}) {
  if (!existsSync(join(REPO, 'examples', 'node_modules', '@polkadot', 'api'))) {
    throw new Error('examples/node_modules is missing: run `bash scripts/setup.sh`');
  }
  return new Promise((ok) => {
    execFile(process.execPath, [join('examples', script), ...args], { cwd: REPO, timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => ok({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

/** The script failed with exactly one line on stderr, matching `re`. */
function assertOneLineError(res, re, what) {
  assert.notEqual(res.code, 0, `${what}: non-zero exit (stdout: ${res.stdout})`);
  const lines = res.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(res.stderr)}`);
  assert.match(lines[0], re, what);
}

/** "12.5 VRTY" -> planck. */
function planck(text) {
  const [int, frac = ''] = text.split('.');
  return BigInt(int) * UNIT + BigInt(frac.padEnd(12, '0'));
}

/** operator-status.js's balance and totals. */
function parseStatus(stdout) {
  const free = /^balance: free (-?[\d.]+) VRTY/m.exec(stdout);
  const sum = /: (\d+) jobs final, earned ([\d.]+) VRTY; (\d+) deadlines missed, penalties ([\d.]+) VRTY; (\d+) frauds proven, slashed ([\d.]+) VRTY; transaction fees ([\d.]+) VRTY; net (-?[\d.]+) VRTY$/m.exec(stdout);
  assert.ok(free && sum, `operator-status output:\n${stdout}`);
  return {
    free: planck(free[1]), jobs: Number(sum[1]), earned: planck(sum[2]), frauds: Number(sum[5]),
    slashed: planck(sum[6]), fees: planck(sum[7]), net: sum[8].startsWith('-') ? -planck(sum[8].slice(1)) : planck(sum[8]),
  };
}

describe('examples', { concurrency: 2 }, () => {
  test('register-model, operator-setup (Dave), submit-job to final with the worker\'s output, operator-status earnings; errors are one line', { timeout: 480_000 }, async () => {
    await cryptoWaitReady();
    const worker = await startWorker('examples-worker');
    const node = await startNode('examples-alice', ['--dev', '--tmp', '--inference-worker', worker.url]);
    const url = `ws://127.0.0.1:${node.rpcPort}`;
    try {
      const alice = new Keyring({ type: 'sr25519' }).addFromUri('//Alice').address;
      const local = workerRun(MODEL.model, MODEL.input);

      // Errors: one readable line, non-zero exit, no job submitted.
      const unknown = await example('submit-job.js', ['--url', url, '--model', `0x${'00'.repeat(32)}`]);
      assertOneLineError(unknown, /^submit-job\.js: error: unknown model 0x0{64} \(registered: .*digits-cnn 0x/, 'unknown model');
      const cheap = await example('submit-job.js', ['--url', url, '--max-fee', '0.5']);
      assertOneLineError(cheap, /^submit-job\.js: error: submit failed: jobs\.NoOperatorAvailable \(/, 'max fee below every price');
      const dead = await example('submit-job.js', ['--url', `ws://127.0.0.1:${await freePort()}`]);
      assertOneLineError(dead, /^submit-job\.js: error: cannot connect to ws:\/\/127\.0\.0\.1:\d+/, 'nothing listens at --url');
      const badOp = await example('operator-status.js', ['--url', url, '--operator', 'not-an-address']);
      assertOneLineError(badOp, /^operator-status\.js: error: not an address or secret URI: not-an-address$/, 'bad --operator');

      const before = await example('operator-status.js', ['--url', url, '--from', '0']);
      assert.equal(before.code, 0, before.stderr);
      assert.match(before.stdout, /^stake: active 10000 VRTY, locked 0 VRTY as collateral of 0 open jobs/m);
      assert.match(before.stdout, new RegExp(`^serves: digits-cnn ${local.model} at 1 VRTY per job`, 'm'));
      const s0 = parseStatus(before.stdout);

      // A publisher registers a model (Eve: the testdata MLP), Dave becomes an operator serving it
      // at 0.5 VRTY with his vrty key in the node's keystore (author_insertKey).
      const mlp = workerRun(EXAMPLES.mlp.model, EXAMPLES.mlp.input);
      const reg = await example('register-model.js', ['--url', url, '--seed', '//Eve', '--file', 'primitives/testdata/mlp.vmodel', '--name', 'test-mlp']);
      assert.equal(reg.code, 0, reg.stderr);
      const headerLen = BigInt(/: header (\d+) bytes, name test-mlp/.exec(reg.stdout)[1]);
      const deposit = UNIT + (headerLen + BigInt('test-mlp'.length + 'primitives/testdata/mlp.vmodel'.length)) * UNIT / 10n;
      const regLine = new RegExp(`^registered ${mlp.model}: deposit ([\\d.]+) VRTY held from `, 'm').exec(reg.stdout);
      assert.ok(regLine, reg.stdout);
      assert.equal(planck(regLine[1]), deposit, 'deposit = DepositBase + DepositPerByte x (header + name + uri)');
      const again = await example('register-model.js', ['--url', url, '--seed', '//Eve', '--file', 'primitives/testdata/mlp.vmodel', '--name', 'test-mlp']);
      assertOneLineError(again, /^register-model\.js: error: register failed: models\.AlreadyRegistered /, 'registering twice');
      const dave = new Keyring({ type: 'sr25519' }).addFromUri('//Dave');
      await rpc(node.rpcPort, 'author_insertKey', ['vrty', '//Dave', u8aToHex(dave.publicKey)]);
      const low = await example('operator-setup.js', ['--url', url, '--seed', '//Dave', '--bond', '999']);
      assertOneLineError(low, /^operator-setup\.js: error: bond failed: operators\.BelowMinBond /, 'bond below MinBond');
      const setup = await example('operator-setup.js', ['--url', url, '--seed', '//Dave', '--bond', '1000', '--model', 'test-mlp', '--price', '0.5']);
      assert.equal(setup.code, 0, setup.stderr);
      assert.match(setup.stdout, new RegExp(`serves test-mlp ${mlp.model} at 0.5 VRTY per job`));

      // Charlie submits to digits-cnn with its sample input (the defaults; only Alice serves it),
      // Ferdie to test-mlp at most 0.5 VRTY (only Dave serves it), at the same time.
      const t0 = Date.now();
      const [sub, sub2] = await Promise.all([
        example('submit-job.js', ['--url', url], { timeoutMs: 360_000 }),
        example('submit-job.js', ['--url', url, '--seed', '//Ferdie', '--model', mlp.model, '--input', EXAMPLES.mlp.input, '--max-fee', '0.5'], { timeoutMs: 360_000 }),
      ]);
      assert.equal(sub.code, 0, `submit-job exit 0 (stderr: ${sub.stderr}; logs: ${node.logFile}, ${worker.logFile})`);
      assert.equal(sub.stderr, '');
      const out = sub.stdout;
      const order = ['jobs.Submitted', 'jobs.Assigned', 'jobs.Committed', 'jobs.Finalized'].map((e) => out.indexOf(`${e}: `));
      assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), `events in lifecycle order:\n${out}`);
      assert.match(out, new RegExp(`jobs\\.Committed: by ${alice}, trace root ${local.trace_root}`));
      assert.match(out, new RegExp(`jobs\\.Finalized: final, ${alice} paid 1 VRTY`));
      assert.equal(/^output: (0x[0-9a-f]*)$/m.exec(out)?.[1], local.output, 'printed output = verity-worker run output');
      const bytes = Buffer.from(local.output.slice(2), 'hex');
      const values = Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length));
      assert.match(out, new RegExp(`^output \\(int8\\): ${values.join(' ')} \\(argmax ${values.indexOf(Math.max(...values))}\\)$`, 'm'));
      const receipt = JSON.parse(/^receipt: (.*)$/m.exec(out)[1]);
      assert.equal(receipt.outcome, 'Final');
      assert.equal(receipt.operator, alice);
      assert.equal(receipt.model, local.model);
      assert.equal(receipt.output, local.output);
      assert.equal(receipt.traceRoot, local.trace_root);
      assert.equal(BigInt(receipt.fee), PRICE);

      assert.equal(sub2.code, 0, `submit-job (test-mlp) exit 0 (stderr: ${sub2.stderr}; logs: ${node.logFile}, ${worker.logFile})`);
      const receipt2 = JSON.parse(/^receipt: (.*)$/m.exec(sub2.stdout)[1]);
      assert.equal(receipt2.operator, dave.address, 'the test-mlp job went to Dave');
      assert.equal(receipt2.output, mlp.output);
      assert.equal(receipt2.traceRoot, mlp.trace_root);
      assert.equal(BigInt(receipt2.fee), PRICE / 2n);

      // Alice earned the price; her free balance moved by exactly earnings - fees.
      const after = await example('operator-status.js', ['--url', url, '--from', '0']);
      assert.equal(after.code, 0, after.stderr);
      const s1 = parseStatus(after.stdout);
      assert.equal(s1.jobs - s0.jobs, 1, 'one more job final');
      assert.equal(s1.earned - s0.earned, PRICE, 'earnings + price');
      assert.ok(s1.fees > s0.fees, 'Alice paid for her commit');
      assert.equal(s1.free - s0.free, (s1.earned - s1.fees) - (s0.earned - s0.fees), 'free balance change = earnings - fees');
      assert.equal(s1.net, s1.earned - s1.fees);
      assert.match(after.stdout, new RegExp(`^#\\d+ job ${receipt.job} final: \\+1 VRTY$`, 'm'));
      const daveStatus = await example('operator-status.js', ['--url', url, '--operator', dave.address, '--from', '0']);
      assert.equal(daveStatus.code, 0, daveStatus.stderr);
      assert.match(daveStatus.stdout, /^stake: active 1000 VRTY, locked 0 VRTY as collateral of 0 open jobs/m);
      const d = parseStatus(daveStatus.stdout);
      assert.equal(d.jobs, 1);
      assert.equal(d.earned, PRICE / 2n);
      console.log(`# examples: submit-job ran ${((Date.now() - t0) / 1000).toFixed(0)} s (submit -> final)`);
    } finally {
      await stopAll(node, worker);
    }
  });

  test('watch-fraud prints Bob\'s accepted proof and his reward; submit-job reports the fraud; operator-status the slash', { timeout: 420_000 }, async () => {
    await cryptoWaitReady();
    const net = await startFraudNetwork('examples-fraud');
    const { alice } = net;
    let watch;
    try {
      const k = new Keyring({ type: 'sr25519' });
      const a = k.addFromUri('//Alice').address;
      const b = k.addFromUri('//Bob');
      const url = `ws://127.0.0.1:${alice.rpcPort}`;

      // The watcher's feed runs while the job is submitted.
      let feed = '';
      watch = spawn(process.execPath, [join('examples', 'watch-fraud.js'), '--url', url, '--prover', '//Bob', '--count', '1', '--timeout', '300'],
        { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let feedErr = '';
      watch.stdout.on('data', (c) => { feed += c; });
      watch.stderr.on('data', (c) => { feedErr += c; });
      const watchExit = new Promise((ok) => watch.on('exit', (code) => ok(code)));
      await waitFor('watch-fraud started', async () => feed.includes('watching fraud proofs'), { timeoutMs: 60_000 });

      const sub = await example('submit-job.js', ['--url', url], { timeoutMs: 300_000 });
      assertOneLineError(sub, /^submit-job\.js: error: job \d+ closed as Fraud without a result \(the max fee was refunded\)$/, 'fraud');
      assert.equal(sub.code, 2);
      assert.match(sub.stdout, new RegExp(`disputes\\.FraudProven: ${b.address} proved step \\d+ of ${a} wrong; slashed 100 VRTY, prover's reward 50 VRTY`));
      assert.match(sub.stdout, /jobs\.Fraudulent: closed, 2 VRTY refunded to /);
      const receipt = JSON.parse(/^receipt: (.*)$/m.exec(sub.stdout)[1]);
      assert.equal(receipt.outcome.Fraud.prover, b.address);
      assert.equal(receipt.output, '0x');
      assert.equal(receipt.traceRoot, null);

      assert.equal(await watchExit, 0, `watch-fraud exit 0 (stderr: ${feedErr}; stdout: ${feed})`);
      const m = new RegExp(`^#\\d+ job ${receipt.job}: ${b.address} proved step ${receipt.outcome.Fraud.step} of ${a}'s commitment wrong: ` +
        'slashed 100 VRTY, reward 50 VRTY, proof\'s transaction fee ([\\d.]+) VRTY, net ([\\d.]+) VRTY$', 'm').exec(feed);
      assert.ok(m, `watch-fraud output:\n${feed}`);
      const [fee, net] = [planck(m[1]), planck(m[2])];
      assert.ok(fee > 0n, 'the proof paid a fee');
      assert.equal(net, COLLATERAL * PROVER_SHARE_PERCENT / 100n - fee, 'net = reward - fee');
      assert.match(feed, new RegExp(`^1 fraud proofs: rewards 50 VRTY, transaction fees ${m[1]} VRTY$`, 'm'));
      console.log(`# watch-fraud: ${m[0]}`);

      const status = await example('operator-status.js', ['--url', url, '--from', '0']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^stake: active 9900 VRTY, .*; jailed until #\d+ \(then operators\.unjail and serve again\)$/m);
      const s = parseStatus(status.stdout);
      assert.equal(s.frauds, 1);
      assert.equal(s.slashed, COLLATERAL);
      assert.equal(s.jobs, 0);
    } finally {
      if (watch && watch.exitCode === null) watch.kill('SIGKILL');
      await net.stop();
    }
  });
});
