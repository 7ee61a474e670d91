// `make testnet`: scripts/testnet.sh starts three validators (Alice, Bob, Charlie), the operator
// Dave and the watcher Eve (each with its own verity-worker) from the generated testnet chain spec.
// The test runs the script itself (not make, which would rebuild), waits until all five nodes are
// peered and finality advances (which needs all three validators), submits a job through Eve's
// node that Dave's agent executes and commits, that Eve's agent re-executes and finds consistent,
// and that becomes final (Dave is paid the price); then it stops the script with SIGINT and checks
// that every process the script started is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { REPO, NODE_BIN, LOG_DIR, freePort, waitFor, rpc, finalizedNumber, sleep } from '../lib/node.js';
import { WORKER_BIN, EXAMPLES, workerRun } from '../lib/worker.js';

const UNIT = 1_000_000_000_000n;
const PRICE = UNIT; // Dave's price for the example models (preset `testnet`)
const NAMES = ['alice', 'bob', 'charlie', 'dave', 'eve'];
const MODEL = EXAMPLES.digits_mlp;

/** Pids of the live children of `pid`, with their command lines (from /proc). */
function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which is in parentheses and may hold spaces).
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) !== pid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(entry), state: rest[0], cmdline });
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('make testnet: 3 validators, operator and watcher peer, finalize, settle a job, stop cleanly', { timeout: 600_000 }, async () => {
  await cryptoWaitReady();
  const work = mkdtempSync(join(tmpdir(), 'verity-testnet-'));
  // The chain specs, generated from the presets as `make testnet` does (through `make chain-spec`).
  execFileSync('bash', [join(REPO, 'chain-spec', 'generate.sh'), work], {
    stdio: 'pipe', timeout: 120_000, env: { ...process.env, VERITY_NODE: NODE_BIN },
  });
  const plain = JSON.parse(readFileSync(join(work, 'testnet.json'), 'utf8'));
  const patch = plain.genesis.runtimeGenesis.patch;
  assert.equal(patch.aura.authorities.length, 3, 'testnet: three Aura authorities');
  assert.equal(patch.grandpa.authorities.length, 3, 'testnet: three GRANDPA authorities');
  assert.equal(patch.operators.operators.length, 1, 'testnet: one operator');

  const k = new Keyring({ type: 'sr25519' });
  const dave = k.addFromUri('//Dave');
  const eve = k.addFromUri('//Eve');
  const charlie = k.addFromUri('//Charlie');
  assert.equal(patch.operators.operators[0][0], dave.address, 'testnet: Dave is the operator');
  // The preset's hour-long challenge window (docs/PROTOCOL.md, attack 1) would keep the job open
  // for an hour: this network gets the --dev times, patched into the spec as an operator of a
  // short-lived demo network would (then the raw spec is generated from it).
  assert.deepEqual(patch.jobs.timing, { executionDeadline: 30, challengeWindow: 600 }, 'testnet: network timing');
  patch.jobs.timing = { executionDeadline: 10, challengeWindow: 20 };
  writeFileSync(join(work, 'testnet-short.json'), JSON.stringify(plain));
  writeFileSync(join(work, 'testnet-raw.json'), execFileSync(NODE_BIN,
    ['export-chain-spec', '--chain', join(work, 'testnet-short.json'), '--raw'], { maxBuffer: 64 << 20 }));

  const rpcPorts = [];
  const p2pPorts = [];
  const workerPorts = [];
  for (let i = 0; i < 5; i++) { rpcPorts.push(await freePort()); p2pPorts.push(await freePort()); }
  for (let i = 0; i < 2; i++) workerPorts.push(await freePort());
  const dir = join(work, 'net');
  const logs = join(dir, 'logs');
  const scriptLog = join(LOG_DIR, `testnet-script-${rpcPorts[0]}.log`);
  const proc = spawn('bash', [join(REPO, 'scripts', 'testnet.sh')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      VERITY_TESTNET_DIR: dir,
      VERITY_TESTNET_SPEC: join(work, 'testnet-raw.json'),
      VERITY_TESTNET_RPC_PORTS: rpcPorts.join(' '),
      VERITY_TESTNET_P2P_PORTS: p2pPorts.join(' '),
      VERITY_TESTNET_WORKER_PORTS: workerPorts.join(' '),
      VERITY_NODE_BIN: NODE_BIN,
      VERITY_WORKER_BIN: WORKER_BIN,
    },
  });
  let output = '';
  proc.stdout.on('data', (c) => { output += c; });
  proc.stderr.on('data', (c) => { output += c; });
  const exited = new Promise((ok) => proc.on('exit', (code, signal) => ok({ code, signal })));
  const where = () => `script output:\n${output}\nnode and worker logs: ${logs}`;

  let api;
  let children = [];
  let failure = null;
  try {
    // All five RPC endpoints answer.
    for (const [i, port] of rpcPorts.entries()) {
      await waitFor(`${NAMES[i]} RPC on ${port} (${where()})`, async () => {
        if (proc.exitCode !== null) {
          const e = new Error(`testnet.sh exited with ${proc.exitCode}; ${where()}`);
          e.fatal = true;
          throw e;
        }
        return await rpc(port, 'system_health');
      }, { timeoutMs: 120_000 });
    }
    // The script's children: five nodes and two workers.
    children = childrenOf(proc.pid).filter((c) => c.cmdline.some((a) => /verity-(node|worker)$/.test(a)));
    const nodes = children.filter((c) => c.cmdline.some((a) => a.endsWith('verity-node')));
    const workers = children.filter((c) => c.cmdline.some((a) => a.endsWith('verity-worker')));
    assert.equal(nodes.length, 5, `five verity-node children: ${JSON.stringify(children.map((c) => c.cmdline.join(' ')))}`);
    assert.equal(workers.length, 2, 'two verity-worker children');
    assert.ok(output.includes(`${rpcPorts[0]}`) && output.includes(`${rpcPorts[4]}`), 'the script prints the RPC ports');

    // Every node is connected to the four others.
    for (const [i, port] of rpcPorts.entries()) {
      await waitFor(`${NAMES[i]} to have 4 peers (log: ${join(logs, `${NAMES[i]}.log`)})`,
        async () => (await rpc(port, 'system_health')).peers >= 4, { timeoutMs: 120_000, everyMs: 1_000 });
    }
    // Finality advances on every node (GRANDPA needs all three validators: 3 of 3).
    const first = await waitFor('finality #2 on Alice', async () => {
      const f = await finalizedNumber(rpcPorts[0]);
      return f >= 2 ? f : 0;
    }, { timeoutMs: 120_000, everyMs: 1_000 });
    for (const [i, port] of rpcPorts.entries()) {
      await waitFor(`finality past #${first} on ${NAMES[i]}`, async () => (await finalizedNumber(port)) > first,
        { timeoutMs: 90_000, everyMs: 1_000 });
    }
    const hashes = await Promise.all(rpcPorts.map((p) => rpc(p, 'chain_getBlockHash', [first])));
    assert.equal(new Set(hashes).size, 1, 'all five nodes finalized the same block');

    // Charlie submits a job through Eve's node (a non-validator: the transaction is gossiped).
    api = await ApiPromise.create({ provider: new WsProvider(`ws://127.0.0.1:${rpcPorts[4]}`), noInitWarn: true });
    const local = workerRun(MODEL.model, MODEL.input);
    assert.ok((await api.query.models.models(local.model)).isSome, 'example model registered');
    const input = readFileSync(MODEL.input);
    const submitted = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('submit not included within 90 s')), 90_000);
      api.tx.jobs.submit(local.model, u8aToHex(input), 2n * PRICE).signAndSend(charlie, ({ status, events, dispatchError }) => {
        if (dispatchError) { clearTimeout(timer); fail(new Error(`submit failed: ${dispatchError.toString()}`)); }
        if (status.isInBlock) {
          clearTimeout(timer);
          const ev = events.find(({ event }) => api.events.jobs.Submitted.is(event));
          ok(ev ? { job: ev.event.data[0].toNumber(), blockHash: status.asInBlock } : null);
        }
      }).catch((e) => { clearTimeout(timer); fail(e); });
    });
    assert.notEqual(submitted, null, 'Submitted emitted');
    const { job, blockHash } = submitted;
    const atSubmit = await api.at(blockHash);
    const assigned = (await atSubmit.query.jobs.jobs(job)).unwrap();
    assert.equal(assigned.operator.toString(), dave.address, 'the job is assigned to Dave');
    const daveBefore = (await atSubmit.query.system.account(dave.address)).data.free.toBigInt();

    // Dave's agent commits the worker's output.
    const committed = await waitFor(`job ${job} committed by Dave's agent (logs: ${join(logs, 'dave.log')})`, async () => {
      const j = await api.query.jobs.jobs(job);
      return j.isSome && j.unwrap().status.isCommitted ? j.unwrap() : null;
    }, { timeoutMs: 120_000, everyMs: 1_000 });
    assert.equal(committed.status.asCommitted.traceRoot.toHex(), local.trace_root, 'committed trace root = verity-worker run');
    assert.match(readFileSync(join(logs, 'dave.log'), 'utf8'), new RegExp(`job ${job}: commit submitted`));

    // Eve's agent re-executes it during the window and finds the commitment consistent.
    await waitFor(`Eve's agent to re-execute job ${job} (log: ${join(logs, 'eve.log')})`, async () =>
      new RegExp(`job ${job}: re-executed, commitment consistent`).test(readFileSync(join(logs, 'eve.log'), 'utf8')),
    { timeoutMs: 120_000, everyMs: 1_000 });

    // The job is final after the challenge window (20 blocks): receipt, Dave paid the price.
    const receipt = await waitFor(`job ${job} final`, async () => {
      const r = await api.query.jobs.receipts(job);
      return r.isSome ? r.unwrap() : null;
    }, { timeoutMs: 240_000, everyMs: 2_000 });
    assert.ok(receipt.outcome.isFinal, `outcome ${receipt.outcome.toString()}`);
    assert.equal(receipt.operator.toString(), dave.address);
    assert.equal(receipt.output.toHex(), local.output, 'receipt output = verity-worker run output');
    const daveAfter = (await api.query.system.account(dave.address)).data.free.toBigInt();
    // Dave earned the price; his only other change is the commit's transaction fee (< price).
    assert.ok(daveAfter > daveBefore && daveAfter - daveBefore < PRICE, `Dave: ${daveBefore} -> ${daveAfter}`);
    assert.equal((await api.query.system.account(eve.address)).data.free.toBigInt(), 1_000_000n * UNIT, 'Eve sent nothing (no fraud proof)');

    // Its receipt, fetched from Eve's (non-validator) node, verifies offline against the testnet
    // chain-spec file: a GRANDPA justification signed by the three validators.
    const closedAt = receipt.closedAt.toNumber();
    await waitFor(`block #${closedAt} finalized on Eve's node`, async () => (await finalizedNumber(rpcPorts[4])) >= closedAt,
      { timeoutMs: 90_000, everyMs: 1_000 });
    const receiptFile = join(work, 'receipt.json');
    execFileSync(NODE_BIN, ['receipt', 'fetch', '--rpc', `http://127.0.0.1:${rpcPorts[4]}`, '--job', String(job), '--out', receiptFile],
      { stdio: 'pipe', timeout: 120_000 });
    const verified = execFileSync(NODE_BIN, ['receipt', 'verify', receiptFile, '--chain', join(work, 'testnet-raw.json'), '--allow-dev-keys', '--model', MODEL.model],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    assert.match(verified, /outcome: +final/);
    assert.match(verified, new RegExp(`output: +${local.output}`));
    assert.match(verified, /GRANDPA justification, set 0, 3 voters/);
    assert.match(verified, /same output and trace root/);
  } catch (e) {
    failure = e;
  } finally {
    if (api) await api.disconnect();
    // Ctrl-C: the script stops everything it started.
    if (proc.exitCode === null) proc.kill('SIGINT');
    let timer;
    const res = await Promise.race([exited, new Promise((ok) => { timer = setTimeout(() => ok(null), 60_000); })]);
    clearTimeout(timer);
    if (res === null) {
      for (const c of childrenOf(proc.pid)) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
      proc.kill('SIGKILL');
    }
    await sleep(500);
    const left = children.filter((c) => alive(c.pid));
    for (const c of left) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
    if (failure) {
      console.error(`# testnet: kept ${work} (logs: ${logs})`);
      throw failure;
    }
    if (existsSync(work) && res !== null && left.length === 0) rmSync(work, { recursive: true, force: true });
    assert.notEqual(res, null, `testnet.sh did not exit within 60 s of SIGINT; ${where()}`);
    assert.equal(res.code, 130, `testnet.sh exits with 130 after SIGINT (got ${JSON.stringify(res)}); ${where()}`);
    assert.deepEqual(left.map((c) => c.cmdline.join(' ')), [], 'no node or worker left running');
    assert.equal(children.length, 7, 'seven processes were started and checked');
  }
});
