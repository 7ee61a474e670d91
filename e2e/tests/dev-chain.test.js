// Foundation: a real `verity-node --dev` finalizes blocks, includes a polkadot.js transfer signed by
// Alice that changes both balances, and stops cleanly on SIGINT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { startNode, waitFor, finalizedNumber } from '../lib/node.js';

test('dev chain: finality, an Alice -> Bob transfer, clean stop', { timeout: 180_000 }, async () => {
  await cryptoWaitReady();
  const node = await startNode('dev', ['--dev', '--tmp']);
  let api;
  try {
    await waitFor(`finalized head >= #2 (log: ${node.logFile})`, async () => (await finalizedNumber(node.rpcPort)) >= 2,
      { timeoutMs: 60_000 });

    api = await ApiPromise.create({ provider: new WsProvider(`ws://127.0.0.1:${node.rpcPort}`), noInitWarn: true });
    const keyring = new Keyring({ type: 'sr25519' });
    const alice = keyring.addFromUri('//Alice');
    const bob = keyring.addFromUri('//Bob');

    const before = {
      alice: (await api.query.system.account(alice.address)).data.free.toBigInt(),
      bob: (await api.query.system.account(bob.address)).data.free.toBigInt(),
    };
    const amount = 1_234_567_890_000n;

    const tx = api.tx.balances.transferKeepAlive(bob.address, amount);
    const { blockHash, fee } = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('transfer not included within 60 s')), 60_000);
      tx.signAndSend(alice, ({ status, events, dispatchError }) => {
        if (dispatchError) { clearTimeout(timer); fail(new Error(`transfer failed: ${dispatchError.toString()}`)); }
        if (status.isInBlock) {
          const paid = events.find(({ event }) => api.events.transactionPayment.TransactionFeePaid.is(event));
          assert.ok(events.some(({ event }) => api.events.system.ExtrinsicSuccess.is(event)), 'ExtrinsicSuccess emitted');
          assert.ok(events.some(({ event }) => api.events.balances.Transfer.is(event)), 'Transfer emitted');
          clearTimeout(timer);
          ok({ blockHash: status.asInBlock, fee: paid ? paid.event.data[1].toBigInt() : 0n });
        }
      }).catch((e) => { clearTimeout(timer); fail(e); });
    });

    const at = await api.at(blockHash);
    const after = {
      alice: (await at.query.system.account(alice.address)).data.free.toBigInt(),
      bob: (await at.query.system.account(bob.address)).data.free.toBigInt(),
    };
    assert.ok(fee > 0n, 'a fee was paid');
    assert.equal(after.bob - before.bob, amount, 'Bob received exactly the amount');
    assert.equal(before.alice - after.alice, amount + fee, 'Alice paid the amount plus the fee');
  } finally {
    if (api) await api.disconnect();
    const { code, signal } = await node.stop();
    assert.equal(signal, null, `node killed by ${signal}`);
    assert.equal(code, 0, `node exit code (log: ${node.logFile})`);
  }
});
