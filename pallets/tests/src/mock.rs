//! A mock runtime with balances, the four Verity pallets and the agent, and helpers shared by
//! the tests.

use frame_support::{
	assert_ok, derive_impl, parameter_types,
	traits::{fungible::InspectHold, ConstU32, ConstU64, OnInitialize, VariantCountOf},
};
use frame_system::offchain::AppCrypto;
use sp_core::H256;
use sp_runtime::{
	generic::SignedPayload,
	testing::{TestSignature, UintAuthorityId},
	BuildStorage, Perbill,
};
use verity_primitives::{testing::TestCase, FraudProof, Hash, ModelId};

pub use pallet_verity_jobs::JobId;

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = u64;
pub type Balance = u64;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Models: pallet_verity_models,
		Operators: pallet_verity_operators,
		Jobs: pallet_verity_jobs,
		Disputes: pallet_verity_disputes,
		Agent: pallet_verity_agent,
		TransactionPayment: pallet_transaction_payment,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
}

pub const DEPOSIT_BASE: Balance = 100;
pub const MIN_BOND: Balance = 1_000;
pub const COLLATERAL: Balance = 500;
/// A job's collateral is at least this many times its `max_fee` (500 at `max_fee` 100).
pub const COLLATERAL_RATIO: u32 = 5;
pub const PENALTY: Balance = 50;
pub const DEADLINE: u64 = 5;
pub const WINDOW: u64 = 10;
pub const UNBONDING: u64 = 40;
pub const JAIL: u64 = 20;
pub const MAX_ATTEMPTS: u32 = 3;
pub const JOBS_PER_BLOCK: u32 = 4;
pub const SPREAD: u32 = 3;
pub const RECEIPT_RETENTION: u64 = 100;
pub const PROOF_DEPOSIT: Balance = 7;
/// A game against a generation bonds this.
pub const CHALLENGE_BOND: Balance = 40;
/// Positions of a generation job at most.
pub const MAX_CONTEXT: u32 = 64;
pub const REGISTRATION_GRACE: u64 = 10;
pub const AVAILABILITY_BOND_BASE: Balance = 30;
pub const AVAILABILITY_PERIOD: u64 = 5;
pub const ENDOWMENT: Balance = 1_000_000;

parameter_types! {
	pub const ProverShare: Perbill = Perbill::from_percent(50);
	/// The jobs hook's budget: unlimited unless a test sets it (`HookBudget::set`).
	pub static HookBudget: frame_support::weights::Weight = frame_support::weights::Weight::MAX;
}

impl pallet_verity_models::Config for Test {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type MaxHeaderBytes = ConstU32<{ 1 << 16 }>;
	type MaxOps = ConstU32<16>;
	type MaxLmOps = ConstU32<16384>;
	type MaxTensorElements = ConstU32<{ 1 << 16 }>;
	type MaxOpInputs = ConstU32<4>;
	type MaxStepProofBytes = ConstU32<{ 1 << 16 }>;
	type MaxStepMacs = ConstU32<{ 1 << 20 }>;
	type MaxInputBytes = ConstU32<4096>;
	type MaxOutputBytes = ConstU32<512>;
	type MaxNameLen = ConstU32<32>;
	type MaxUriLen = ConstU32<128>;
	type DepositBase = ConstU64<DEPOSIT_BASE>;
	type DepositPerByte = ConstU64<1>;
	type RegistrationGrace = ConstU64<REGISTRATION_GRACE>;
	type AvailabilityBondBase = ConstU64<AVAILABILITY_BOND_BASE>;
	type AvailabilityBondPerByte = ConstU64<1>;
	type AvailabilityPeriod = ConstU64<AVAILABILITY_PERIOD>;
	type WeightInfo = ();
}

impl pallet_verity_operators::Config for Test {
	type MinBond = ConstU64<MIN_BOND>;
	type UnbondingPeriod = ConstU64<UNBONDING>;
	type MaxUnbonding = ConstU32<3>;
	type MaxServersPerModel = ConstU32<4>;
	type MaxModelsPerOperator = ConstU32<3>;
	type JailDuration = ConstU64<JAIL>;
	type Slash = ();
	type WeightInfo = ();
}

impl pallet_verity_jobs::Config for Test {
	type ExecutionDeadline = ConstU64<DEADLINE>;
	type ChallengeWindow = ConstU64<WINDOW>;
	type MaxAttempts = ConstU32<MAX_ATTEMPTS>;
	type JobCollateral = ConstU64<COLLATERAL>;
	type CollateralRatio = ConstU32<COLLATERAL_RATIO>;
	type MissedDeadlinePenalty = ConstU64<PENALTY>;
	type MaxJobsPerBlock = ConstU32<JOBS_PER_BLOCK>;
	type MaxHookWeight = HookBudget;
	type ScheduleSpread = ConstU32<SPREAD>;
	type ReceiptRetention = ConstU64<RECEIPT_RETENTION>;
	type MaxContext = ConstU32<MAX_CONTEXT>;
	type Disputes = Disputes;
	type WeightInfo = ();
}

impl pallet_verity_disputes::Config for Test {
	type ProverShare = ProverShare;
	type ProofCommitmentDeposit = ConstU64<PROOF_DEPOSIT>;
	type ChallengeBond = ConstU64<CHALLENGE_BOND>;
	type WeightInfo = ();
}

/// The transactions the agent pools: signed by a `UintAuthorityId` key over the call and the
/// nonce (the one extension the agent chooses).
/// Fees as in the runtime's shape (no multiplier): the agent's tips travel in
/// `ChargeTransactionPayment`.
#[derive_impl(pallet_transaction_payment::config_preludes::TestDefaultConfig)]
impl pallet_transaction_payment::Config for Test {
	type OnChargeTransaction = pallet_transaction_payment::FungibleAdapter<Balances, ()>;
	type WeightToFee = frame_support::weights::IdentityFee<Balance>;
	type LengthToFee = frame_support::weights::IdentityFee<Balance>;
}

/// The signed extensions of the mock's transactions: the nonce, and the tip.
pub type TxExtension =
	(frame_system::CheckNonce<Test>, pallet_transaction_payment::ChargeTransactionPayment<Test>);

pub type Extrinsic =
	sp_runtime::generic::UncheckedExtrinsic<AccountId, RuntimeCall, TestSignature, TxExtension>;

impl frame_system::offchain::SigningTypes for Test {
	type Public = UintAuthorityId;
	type Signature = TestSignature;
}

impl<C> frame_system::offchain::CreateTransactionBase<C> for Test
where
	RuntimeCall: From<C>,
{
	type Extrinsic = Extrinsic;
	type RuntimeCall = RuntimeCall;
}

impl<C> frame_system::offchain::CreateSignedTransaction<C> for Test
where
	RuntimeCall: From<C>,
{
	fn create_signed_transaction<A: AppCrypto<UintAuthorityId, TestSignature>>(
		call: RuntimeCall,
		public: UintAuthorityId,
		account: AccountId,
		nonce: u32,
	) -> Option<Extrinsic> {
		<Test as pallet_verity_agent::CreateTippedTransaction<C>>::create_tipped_transaction::<A>(
			call, public, account, nonce, 0,
		)
	}
}

impl<C> pallet_verity_agent::CreateTippedTransaction<C> for Test
where
	RuntimeCall: From<C>,
{
	fn create_tipped_transaction<A: AppCrypto<UintAuthorityId, TestSignature>>(
		call: RuntimeCall,
		public: UintAuthorityId,
		account: AccountId,
		nonce: u32,
		tip: Balance,
	) -> Option<Extrinsic> {
		use codec::Encode;
		let extension = (
			frame_system::CheckNonce::<Test>::from(nonce),
			pallet_transaction_payment::ChargeTransactionPayment::<Test>::from(tip),
		);
		let payload = SignedPayload::new(call, extension).ok()?;
		let signature = payload.using_encoded(|bytes| A::sign(bytes, public))?;
		let (call, extension, _) = payload.deconstruct();
		Some(Extrinsic::new_signed(call, account, signature, extension))
	}
}

/// The agent's keys in the mock: `UintAuthorityId(n)` is account `n`'s key
/// (`UintAuthorityId::set_all_keys` puts keys in the node's keystore).
pub struct AgentKey;

impl AppCrypto<UintAuthorityId, TestSignature> for AgentKey {
	type RuntimeAppPublic = UintAuthorityId;
	type GenericPublic = UintAuthorityId;
	type GenericSignature = TestSignature;
}

impl pallet_verity_agent::Config for Test {
	type AuthorityId = AgentKey;
	type MaxRequestsPerBlock = ConstU32<2>;
}

pub const PUBLISHER: AccountId = 1;
pub const ALICE: AccountId = 2;
pub const BOB: AccountId = 3;
pub const CHARLIE: AccountId = 4;
pub const DAVE: AccountId = 5;
pub const EVE: AccountId = 6;
/// An account with no funds.
pub const NOBODY: AccountId = 99;

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut ext = sp_io::TestExternalities::new(genesis_storage());
	ext.execute_with(|| System::set_block_number(1));
	ext
}

/// The mock's genesis state: accounts 1..=10 endowed.
pub fn genesis_storage() -> sp_runtime::Storage {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: (1..=10).map(|a| (a, ENDOWMENT)).collect(),
		..Default::default()
	}
	.assimilate_storage(&mut t)
	.unwrap();
	t
}

/// Every pallet's invariants plus the issuance rule.
pub fn check_invariants() {
	pallet_verity_models::Pallet::<Test>::do_try_state().expect("models invariants");
	pallet_verity_operators::Pallet::<Test>::do_try_state().expect("operators invariants");
	pallet_verity_jobs::Pallet::<Test>::do_try_state().expect("jobs invariants");
	pallet_verity_disputes::Pallet::<Test>::do_try_state().expect("disputes invariants");
}

/// Advance to block `n`, running `on_initialize` of every pallet and the invariant checks
/// after every block.
pub fn run_to_block(n: u64) {
	while System::block_number() < n {
		let next = System::block_number() + 1;
		System::initialize(&next, &H256::from_low_u64_be(next), &Default::default());
		AllPalletsWithSystem::on_initialize(next);
		check_invariants();
	}
}

pub fn now() -> u64 {
	System::block_number()
}

pub fn free(who: AccountId) -> Balance {
	Balances::free_balance(who)
}

pub fn held(who: AccountId) -> Balance {
	Balances::total_balance_on_hold(&who)
}

pub fn total_issuance() -> Balance {
	Balances::total_issuance()
}

pub fn origin(who: AccountId) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

/// The golden MLP of the primitives (fits the mock's limits).
pub fn mlp() -> TestCase {
	verity_primitives::testing::golden::mlp()
}

/// The golden CNN of the primitives.
pub fn cnn() -> TestCase {
	verity_primitives::testing::golden::cnn()
}

pub fn header_bytes(case: &TestCase) -> Vec<u8> {
	codec::Encode::encode(&case.header)
}

/// Register `case` as `PUBLISHER`; returns its id.
pub fn register(case: &TestCase) -> ModelId {
	announce_earlier(PUBLISHER, &header_bytes(case));
	assert_ok!(Models::register(
		origin(PUBLISHER),
		header_bytes(case),
		b"m".to_vec(),
		b"u".to_vec()
	));
	case.header.id()
}

/// Bond `stake` for `who` and serve `model` at `price`.
pub fn operator(who: AccountId, stake: Balance, model: ModelId, price: Balance) {
	assert_ok!(Operators::bond(origin(who), stake));
	assert_ok!(Operators::serve(origin(who), model, price));
}

/// Submit a job for `case`'s input; returns its id.
pub fn submit(who: AccountId, model: ModelId, case: &TestCase, max_fee: Balance) -> JobId {
	let id = pallet_verity_jobs::NextJobId::<Test>::get();
	assert_ok!(Jobs::submit(origin(who), model, case.input.clone(), max_fee));
	id
}

pub fn job(id: JobId) -> pallet_verity_jobs::Job<Test> {
	pallet_verity_jobs::Jobs::<Test>::get(id).expect("open job")
}

pub fn receipt(id: JobId) -> pallet_verity_jobs::Receipt<Test> {
	pallet_verity_jobs::Receipts::<Test>::get(id).expect("receipt")
}

/// The honest (output, step hashes) of `case`.
pub fn honest(case: &TestCase) -> (Vec<u8>, Vec<Hash>) {
	let trace = case.trace().expect("golden models execute");
	(trace.output().to_vec(), trace.step_hashes(&case.header).expect("hashes"))
}

/// A dishonest trace: tensor `step` is corrupted (one byte changed) and every later step is
/// recomputed from it, so the commitment is consistent from `step` on and only step `step` is
/// provably wrong. Returns (output, step hashes).
pub fn corrupted(case: &TestCase, step: u32) -> (Vec<u8>, Vec<Hash>) {
	let mut tensors = case.trace().expect("executes").tensors;
	let s = step as usize;
	tensors[s][0] = tensors[s][0].wrapping_add(1);
	for i in (s + 1)..tensors.len() {
		let op = case.header.op(i as u32).unwrap();
		let inputs: Vec<Vec<u8>> = op.inputs.iter().map(|&r| tensors[r as usize].clone()).collect();
		tensors[i] =
			verity_primitives::execute_step(&case.header, i as u32, &inputs, &case.weights[i - 1])
				.expect("executes");
	}
	let hashes = tensors
		.iter()
		.enumerate()
		.map(|(i, t)| verity_primitives::tensor_hash(&case.header, i as u32, t).unwrap())
		.collect();
	(tensors.last().unwrap().clone(), hashes)
}

/// The encoded fraud proof for `step` built from the honest trace.
pub fn proof(case: &TestCase, step: u32) -> Vec<u8> {
	let trace = case.trace().unwrap();
	let p: FraudProof =
		verity_primitives::build_fraud_proof(&case.header, &trace, &case.weights, step).unwrap();
	codec::Encode::encode(&p)
}

/// The assigned operator of an open job.
pub fn assignee(id: JobId) -> AccountId {
	job(id).operator
}

/// Stake hold of an operator.
pub fn stake_of(who: AccountId) -> Balance {
	Balances::balance_on_hold(&pallet_verity_operators::HoldReason::Stake.into(), &who)
}

/// Fee hold of a requester.
pub fn fee_held(who: AccountId) -> Balance {
	Balances::balance_on_hold(&pallet_verity_jobs::HoldReason::Fee.into(), &who)
}

/// The last event of the runtime.
pub fn last_event() -> RuntimeEvent {
	System::events().pop().expect("an event").event
}

/// Whether `event` was deposited.
pub fn has_event(event: RuntimeEvent) -> bool {
	System::events().iter().any(|r| r.event == event)
}

/// `who` commits to `proof` for `job` as if in the block before (a reveal needs an earlier
/// commitment: the two-transaction flow itself is tested in `attacks.rs`, attack 2). For a job
/// that cannot be proven now, the commitment is stored directly (its deposit held) so that
/// `prove_fraud` reaches its own checks.
pub fn commit_earlier(who: AccountId, job: JobId, proof: &[u8]) {
	use frame_support::traits::fungible::MutateHold;
	use pallet_verity_disputes::{Commitment, ProofCommitments};
	let hash = Disputes::commitment(job, &who, proof);
	if !ProofCommitments::<Test>::contains_key(who, job)
		&& Disputes::commit_proof(origin(who), job, hash).is_err()
	{
		Balances::hold(
			&pallet_verity_disputes::HoldReason::ProofCommitment.into(),
			&who,
			PROOF_DEPOSIT,
		)
		.expect("deposit");
		ProofCommitments::<Test>::insert(
			who,
			job,
			Commitment { hash, at: now(), deposit: PROOF_DEPOSIT },
		);
	}
	ProofCommitments::<Test>::mutate(who, job, |c| {
		let c = c.as_mut().expect("committed");
		c.hash = hash;
		c.at = now().saturating_sub(1);
	});
}

/// `commit_earlier`, then `Disputes::prove_fraud`.
pub fn reveal(
	who: AccountId,
	job: JobId,
	proof: Vec<u8>,
) -> frame_support::dispatch::DispatchResultWithPostInfo {
	commit_earlier(who, job, &proof);
	Disputes::prove_fraud(origin(who), job, proof)
}

/// `who`'s `proof` for `job`, committed a block earlier, fails with `err` and changes nothing.
pub fn refused(
	who: AccountId,
	job: JobId,
	proof: Vec<u8>,
	err: impl Into<sp_runtime::DispatchError>,
) {
	commit_earlier(who, job, &proof);
	let err: sp_runtime::DispatchError = err.into();
	frame_support::assert_noop!(
		Disputes::prove_fraud(origin(who), job, proof).map_err(|e| e.error),
		err
	);
}

/// `who` announces the registration of `header` as if in the block before (registration needs
/// an earlier announcement; the two-block flow itself is tested in `attacks.rs`, attack 5). An
/// account that cannot pay the announcement's deposit gets it stored without one, so that
/// `register` reaches its own checks.
pub fn announce_earlier(who: AccountId, header: &[u8]) {
	use pallet_verity_models::Announcements;
	let id: ModelId = sp_io::hashing::blake2_256(header);
	let a = Models::announcement(&who, &id);
	if !Announcements::<Test>::contains_key(who, a) && Models::announce(origin(who), a).is_err() {
		Announcements::<Test>::insert(who, a, (now(), 0));
	}
	Announcements::<Test>::mutate(who, a, |e| {
		if let Some((at, _)) = e {
			*at = now().saturating_sub(1);
		}
	});
}

/// `who`'s registration of `header`, announced a block earlier, fails with `err` and changes
/// nothing.
pub fn refused_registration(
	who: AccountId,
	header: Vec<u8>,
	name: Vec<u8>,
	uri: Vec<u8>,
	err: impl Into<sp_runtime::DispatchError>,
) {
	announce_earlier(who, &header);
	frame_support::assert_noop!(Models::register(origin(who), header, name, uri), err.into());
}
