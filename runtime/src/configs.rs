//! Configuration of the FRAME pallets of the runtime.

use crate::*;
use frame_support::{
	derive_impl,
	dispatch::DispatchClass,
	parameter_types,
	traits::{ConstBool, ConstU128, ConstU32, ConstU64, ConstU8, VariantCountOf},
	weights::{
		constants::{ParityDbWeight, WEIGHT_REF_TIME_PER_SECOND},
		ConstantMultiplier, IdentityFee, Weight,
	},
};
use pallet_transaction_payment::{FungibleAdapter, Multiplier, TargetedFeeAdjustment};
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_runtime::{
	traits::{Bounded, One},
	FixedPointNumber, Perbill, Perquintill,
};

/// 75% of a block is for normal transactions, the rest for operational ones.
const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

parameter_types! {
	pub const BlockHashCount: BlockNumber = 2400;
	pub const Version: RuntimeVersion = VERSION;
	/// 2 s of compute per 6 s block.
	pub RuntimeBlockWeights: frame_system::limits::BlockWeights =
		frame_system::limits::BlockWeights::with_sensible_defaults(
			Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
			NORMAL_DISPATCH_RATIO,
		);
	/// 5 MiB per block.
	pub RuntimeBlockLength: frame_system::limits::BlockLength =
		frame_system::limits::BlockLength::builder()
			.max_length(5 * 1024 * 1024)
			.modify_max_length_for_class(DispatchClass::Normal, |max| *max = NORMAL_DISPATCH_RATIO * *max)
			.build();
	pub const SS58Prefix: u8 = 42;
	/// Half the block for the jobs hook (due jobs and receipt pruning); the rest stays for
	/// transactions, the Operational quarter included (attack 10; docs/PROTOCOL.md section 8).
	pub JobsHookWeight: Weight = Perbill::from_percent(50) * RuntimeBlockWeights::get().max_block;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	/// The node runs ParityDB only.
	type DbWeight = ParityDbWeight;
	/// Measured here (`scripts/benchmark.sh frame_system_extensions`), priced with ParityDB.
	type ExtensionsWeightInfo = crate::weights::frame_system_extensions::WeightInfo<Runtime>;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = ConstU32<16>;
}

impl pallet_aura::Config for Runtime {
	type AuthorityId = AuraId;
	type DisabledValidators = ();
	type MaxAuthorities = ConstU32<32>;
	type AllowMultipleBlocksPerSlot = ConstBool<false>;
	type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<32>;
	type MaxNominators = ConstU32<0>;
	type MaxSetIdSessionEntries = ConstU64<0>;
	type KeyOwnerProof = sp_core::Void;
	type EquivocationReportSystem = ();
}

impl pallet_timestamp::Config for Runtime {
	/// Milliseconds since the unix epoch.
	type Moment = u64;
	type OnTimestampSet = Aura;
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ();
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type RuntimeEvent = RuntimeEvent;
	type DustRemoval = ();
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

/// The length fee: 0.1 µVRTY per byte of a transaction (5 MiB of block cost 0.52 VRTY at the
/// minimum multiplier; a 16 KiB job input 0.0016 VRTY).
pub const LENGTH_FEE_PER_BYTE: Balance = MICRO_UNIT / 10;

parameter_types! {
	/// Fees rise when blocks are fuller than this (of the Normal share), fall back when emptier.
	pub const TargetBlockFullness: Perquintill = Perquintill::from_percent(25);
	/// How fast: sustained full blocks multiply fees by about e^(0.75 · 0.0003 · 600) ≈ 1.14 per
	/// hour and about 25 per day (`TargetedFeeAdjustment`, Polkadot's rule with a faster `v`).
	pub AdjustmentVariable: Multiplier = Multiplier::saturating_from_rational(3, 10_000);
	/// Never below the base fee: the honest path costs what it costs on an idle chain.
	pub MinimumMultiplier: Multiplier = Multiplier::one();
	pub MaximumMultiplier: Multiplier = Bounded::max_value();
}

/// Fees: weight at 1 planck per picosecond of reference time, length at
/// [`LENGTH_FEE_PER_BYTE`], both times a multiplier that rises with congestion; Operational
/// transactions (commits and fraud proofs) rank in the pool as if they tipped 5× their fee.
/// Fees and tips are burnt. Why: docs/PROTOCOL.md, "Attacks and what they cost", row 1.
impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type OnChargeTransaction = FungibleAdapter<Balances, ()>;
	type OperationalFeeMultiplier = ConstU8<5>;
	type WeightToFee = IdentityFee<Balance>;
	type LengthToFee = ConstantMultiplier<Balance, ConstU128<LENGTH_FEE_PER_BYTE>>;
	type FeeMultiplierUpdate = TargetedFeeAdjustment<
		Self,
		TargetBlockFullness,
		AdjustmentVariable,
		MinimumMultiplier,
		MaximumMultiplier,
	>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

// ---- Verity -------------------------------------------------------------------------------
//
// The model limits bound every step of every registered model, so that each can be re-executed
// on-chain by a fraud proof; `prove_fraud`'s weight assumes them (see docs/PERFORMANCE.md for
// what the largest step costs in block weight).

impl pallet_verity_models::Config for Runtime {
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	/// 64 KiB headers.
	type MaxHeaderBytes = ConstU32<{ 64 * 1024 }>;
	type MaxOps = ConstU32<64>;
	/// 16,384 ops per position of a language model: SmolLM2-135M up to its 8,192-token
	/// context with attention in blocks of 256 (`lm_limits_admit_smollm2_*`).
	type MaxLmOps = ConstU32<16384>;
	/// 64 Ki elements (bytes) per tensor.
	type MaxTensorElements = ConstU32<{ 64 * 1024 }>;
	type MaxOpInputs = ConstU32<8>;
	/// 512 KiB of input tensors + weights per fraud proof.
	type MaxStepProofBytes = ConstU32<{ 512 * 1024 }>;
	/// 2^23 (8.4 M) multiply-accumulates per step.
	type MaxStepMacs = ConstU32<{ 1 << 23 }>;
	/// 16 KiB model inputs (kept until a job closes).
	type MaxInputBytes = ConstU32<{ 16 * 1024 }>;
	/// 4 KiB outputs (kept in receipts).
	type MaxOutputBytes = ConstU32<4096>;
	type MaxNameLen = ConstU32<64>;
	type MaxUriLen = ConstU32<256>;
	type DepositBase = ConstU128<{ UNIT }>;
	/// 0.1 VRTY per byte: 64 KiB of header cost 6.5 kVRTY.
	type DepositPerByte = ConstU128<{ 100 * MILLI_UNIT }>;
	/// A registration announced earlier takes a copied header's registration over within an
	/// hour (docs/PROTOCOL.md, "Attacks and what they cost", row 5).
	type RegistrationGrace = ConstU32<HOURS>;
	/// An availability challenge bonds 1 VRTY + 1 µVRTY per weight byte (ten times the length
	/// fee of posting them): at most 1.52 VRTY for the largest op (512 KiB).
	type AvailabilityBondBase = ConstU128<UNIT>;
	type AvailabilityBondPerByte = ConstU128<MICRO_UNIT>;
	type AvailabilityPeriod = HalfChallengeWindow;
	type WeightInfo = pallet_verity_models::weights::SubstrateWeight<Runtime>;
}

/// Half of this chain's challenge window (`Jobs::challenge_window`, chosen at genesis): the
/// time to post challenged weights, so that weights posted at the last moment leave half a
/// window for a fraud proof (docs/PROTOCOL.md, "Attacks and what they cost", row 12).
pub struct HalfChallengeWindow;
impl frame_support::traits::Get<BlockNumber> for HalfChallengeWindow {
	fn get() -> BlockNumber {
		crate::Jobs::challenge_window() / 2
	}
}

impl pallet_verity_operators::Config for Runtime {
	type MinBond = ConstU128<{ 1_000 * UNIT }>;
	/// One day: far longer than a job's deadline + challenge window.
	type UnbondingPeriod = ConstU32<DAYS>;
	type MaxUnbonding = ConstU32<16>;
	type MaxServersPerModel = ConstU32<32>;
	type MaxModelsPerOperator = ConstU32<16>;
	/// One hour.
	type JailDuration = ConstU32<HOURS>;
	/// Slashed funds not paid to a prover are burnt.
	type Slash = ();
	type WeightInfo = pallet_verity_operators::weights::SubstrateWeight<Runtime>;
}

impl pallet_verity_jobs::Config for Runtime {
	/// One minute to commit.
	type ExecutionDeadline = ConstU32<10>;
	/// Two minutes to dispute. Short for a dev chain; a public network would choose hours.
	type ChallengeWindow = ConstU32<20>;
	type MaxAttempts = ConstU32<3>;
	type JobCollateral = ConstU128<{ 100 * UNIT }>;
	/// Collateral at least 50 × max_fee: a job worth more than 2 VRTY locks more than 100 VRTY
	/// (docs/PROTOCOL.md, "Attacks and what they cost").
	type CollateralRatio = ConstU32<50>;
	type MissedDeadlinePenalty = ConstU128<{ 10 * UNIT }>;
	type MaxJobsPerBlock = ConstU32<2048>;
	type MaxHookWeight = JobsHookWeight;
	type ScheduleSpread = ConstU32<16>;
	/// A week to fetch a closed job's receipt file; then only its 32-byte digest stays
	/// (docs/RECEIPTS.md, "Retention").
	type ReceiptRetention = ConstU32<{ 7 * DAYS }>;
	/// 8,192 positions per generation job: SmolLM2-135M's whole context (a prompt of up to
	/// 32 KiB of token ids, kept until the job closes; 256 KiB of position roots in a dispute).
	type MaxContext = ConstU32<8192>;
	type Disputes = Disputes;
	type WeightInfo = pallet_verity_jobs::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
	/// Half of a slashed collateral goes to the prover, the rest is burnt.
	pub const ProverShare: Perbill = Perbill::from_percent(50);
}

impl pallet_verity_disputes::Config for Runtime {
	type ProverShare = ProverShare;
	/// Held while a fraud-proof commitment is stored (about 100 bytes): refunded when it is
	/// revealed or withdrawn.
	type ProofCommitmentDeposit = ConstU128<UNIT>;
	/// A game against a generation bonds 10 VRTY: paid to an honest operator whose challenger
	/// gives up, it covers the operator's largest reveal (512 KiB of step hashes: 0.05 VRTY of
	/// length fee plus its weight) many times over.
	type ChallengeBond = ConstU128<{ 10 * UNIT }>;
	type WeightInfo = pallet_verity_disputes::weights::SubstrateWeight<Runtime>;
}

impl pallet_verity_agent::Config for Runtime {
	type AuthorityId = pallet_verity_agent::crypto::AgentId;
	/// At most 64 executions and 64 checks asked of the inference worker per block.
	type MaxRequestsPerBlock = ConstU32<64>;
}

// Signed transactions from the off-chain worker (the agent's commits and fraud proofs).
impl frame_system::offchain::SigningTypes for Runtime {
	type Public = <Signature as Verify>::Signer;
	type Signature = Signature;
}

impl<C> frame_system::offchain::CreateTransactionBase<C> for Runtime
where
	RuntimeCall: From<C>,
{
	type Extrinsic = UncheckedExtrinsic;
	type RuntimeCall = RuntimeCall;
}

impl<C> frame_system::offchain::CreateSignedTransaction<C> for Runtime
where
	RuntimeCall: From<C>,
{
	/// A transaction signed by `public` (the agent's `vrty` key, which is `account`'s key),
	/// mortal for 256 blocks, no tip; the same extensions as any other signed transaction.
	fn create_signed_transaction<
		A: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>,
	>(
		call: RuntimeCall,
		public: Self::Public,
		account: AccountId,
		nonce: Nonce,
	) -> Option<UncheckedExtrinsic> {
		<Runtime as pallet_verity_agent::CreateTippedTransaction<C>>::create_tipped_transaction::<A>(
			call, public, account, nonce, 0,
		)
	}
}

impl<C> pallet_verity_agent::CreateTippedTransaction<C> for Runtime
where
	RuntimeCall: From<C>,
{
	/// [`create_signed_transaction`](frame_system::offchain::CreateSignedTransaction) with `tip`
	/// (the agent raises it while a commit or fraud proof waits in the pool).
	fn create_tipped_transaction<
		A: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>,
	>(
		call: RuntimeCall,
		public: Self::Public,
		account: AccountId,
		nonce: Nonce,
		tip: Balance,
	) -> Option<UncheckedExtrinsic> {
		use codec::Encode;
		use sp_runtime::{generic::Era, SaturatedConversion};
		let current: u64 = System::block_number().saturated_into::<u64>().saturating_sub(1);
		let extension = tx_extension(Era::mortal(256, current), nonce, tip);
		let payload = SignedPayload::new(call, extension).ok()?;
		let signature = payload.using_encoded(|bytes| A::sign(bytes, public))?;
		let (call, extension, _) = payload.deconstruct();
		Some(UncheckedExtrinsic::new_signed(call, MultiAddress::Id(account), signature, extension))
	}
}

/// The transaction extensions of a signed transaction with this era, nonce and tip (in the
/// order of [`TxExtension`]): the one place that lists them for transactions made in the
/// runtime (the agent's) and in its tests.
pub fn tx_extension(era: sp_runtime::generic::Era, nonce: Nonce, tip: Balance) -> TxExtension {
	(
		frame_system::AuthorizeCall::<Runtime>::new(),
		frame_system::CheckNonZeroSender::<Runtime>::new(),
		frame_system::CheckSpecVersion::<Runtime>::new(),
		frame_system::CheckTxVersion::<Runtime>::new(),
		frame_system::CheckGenesis::<Runtime>::new(),
		frame_system::CheckEra::<Runtime>::from(era),
		frame_system::CheckNonce::<Runtime>::from(nonce),
		frame_system::CheckWeight::<Runtime>::new(),
		pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(tip),
		frame_system::WeightReclaim::<Runtime>::new(),
	)
}
