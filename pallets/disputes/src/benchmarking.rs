//! Benchmarks of the disputes pallet (frame-benchmarking v2). `prove_fraud` on the successful
//! (slashing) path, revealing a commitment from the block before: `prove_fraud_bytes` over the
//! proof size (an FC step, whose weights make up the bytes) and `prove_fraud_macs` over the
//! step's multiply-accumulates (a 3x3 convolution with a small proof), one benchmark per other
//! op kind over its step units (`prove_fraud_add`, `_max_pool`, `_avg_pool`,
//! `_global_avg_pool`, `_reshape`, `_concat`, `_lookup`, each at the most work per unit its
//! limits allow), and `prove_fraud_header` over the header's size (decoded on every proof); the
//! call is charged the sum of the bytes, header and step-kind parts (the worst kind when
//! declared). `commit_proof`, `claim_reward` and `withdraw_commitment` are constant-time.
//!
//! `lm_step_*` (marked `extra`: not part of the weights until a call judges transformer steps,
//! run with `--extra`) time `verity_primitives::lm::trace::check_step_proof` of the largest
//! steps of SmolLM2-135M (docs/MODEL_FORMAT.md 12.10) at a maximum context of `512 << c`
//! (512 to 8,192, its whole context),
//! attention in blocks of 256: the in-wasm cost of judging one transformer step.

use super::*;
use alloc::vec::Vec;
use codec::{Decode, Encode};
use frame_benchmarking::v2::*;
use frame_system::RawOrigin;
use pallet_verity_jobs::benchmarking::{committed_generation, requester, serving, submitted};
use pallet_verity_models::benchmarking::{
	conv_model, fc_model, fund, header_of_size, kind_model, register_case, BenchKind,
};
use verity_primitives::{
	fraud::Verdict,
	lm::{
		graph::LmOp,
		header::LmHeader,
		interp::LmJob,
		trace::{check_step_proof, LmStepProof},
	},
	testing::{
		lm::{smollm2_135m_header, synthetic_step_proof},
		TestCase,
	},
};

/// A synthetic step proof of `op` (a function of the context) at the last position of a
/// SmolLM2-135M generation at context `512 << c`, whose committed hash is wrong, with the
/// header, the job and the position roots it is judged against; the proof SCALE-encoded, as a
/// call would receive it.
struct LmCase {
	header: LmHeader,
	job: LmJob,
	roots: Vec<[u8; 32]>,
	proof: Vec<u8>,
}

fn lm_case(c: u32, op: impl Fn(u32) -> LmOp) -> LmCase {
	let ctx = 512u32 << c;
	let h = smollm2_135m_header(ctx, 256);
	let (header, job, roots, proof) =
		synthetic_step_proof(&h, ctx - 1, op(ctx), u64::from(c), false).expect("synthetic proof");
	LmCase { header, job, roots, proof: proof.encode() }
}

/// `n` distinct position roots.
fn some_roots(n: u32) -> Vec<Hash> {
	(0..n).map(|i| sp_runtime::traits::BlakeTwo256::hash(&i.to_le_bytes()).into()).collect()
}

/// A committed generation of `MaxContext` prompt positions (one new token) whose position
/// `p` (a prompt position that does not select) has the most step hashes not above `l`, or
/// the fewest above it (at least 1), revealed roots and one game of `challenger`, that named
/// `p`. Returns the job, `p` and its leaves.
fn named_generation<T: Config>(
	operator: &T::AccountId,
	challenger: &T::AccountId,
	l: u32,
) -> (JobId, u32, Vec<Hash>) {
	use verity_primitives::lm::{
		graph::{ops_at, Shape},
		trace::position_root,
	};
	let ctx = <T as pallet_verity_jobs::Config>::MaxContext::get();
	let mut roots = some_roots(ctx);
	let (h, job) = committed_generation::<T>(operator, ctx, &roots);
	// Positions 0..ctx-1 do not select (the prompt's last position, ctx - 1, does).
	let leaves_at = |p: u32| ops_at(&h, Shape::at(&h, ctx, p)) as u32;
	let last = ctx.saturating_sub(2);
	let p = (0..=last).find(|&p| leaves_at(p) >= l).unwrap_or(last);
	let leaves: Vec<Hash> = (0..leaves_at(p))
		.map(|i| sp_runtime::traits::BlakeTwo256::hash(&(p, i).encode()).into())
		.collect();
	roots[p as usize] = position_root(&leaves);
	// Setup only: the committed job root becomes the one over roots that hold `p`'s leaves.
	pallet_verity_jobs::Jobs::<T>::mutate(job, |j| {
		if let Some(JobStatus::Committed { trace_root, .. }) = j.as_mut().map(|j| &mut j.status) {
			*trace_root = verity_primitives::lm::trace::job_root(&roots);
		}
	});
	fund::<T>(challenger, T::ChallengeBond::get().saturating_mul(2u32.into()));
	assert!(Pallet::<T>::challenge(RawOrigin::Signed(challenger.clone()).into(), job).is_ok());
	assert!(
		Pallet::<T>::reveal_roots(RawOrigin::Signed(operator.clone()).into(), job, roots).is_ok()
	);
	assert!(
		Pallet::<T>::name_position(RawOrigin::Signed(challenger.clone()).into(), job, p).is_ok()
	);
	(job, p, leaves)
}

/// What a call would do with the proof it receives: decode it, then judge it.
fn judge(case: &LmCase) -> Result<Verdict, ()> {
	let proof = LmStepProof::decode(&mut &case.proof[..]).map_err(|_| ())?;
	check_step_proof(&case.header, &case.job, &case.roots, &proof).map_err(|_| ())
}

/// Register `case`, submit it, commit a trace whose hash of `step` is wrong (the output and
/// h_n stay honest when `step` < n, so the commitment is accepted) and return (job, proof).
fn fraudulent<T: Config>(case: &TestCase, step: u32) -> (JobId, Vec<u8>) {
	let publisher: T::AccountId = account("publisher", 0, 0);
	let model = register_case::<T>(&publisher, case);
	let operator: T::AccountId = account("operator", 0, 0);
	serving::<T>(&operator, model, 1);
	let who: T::AccountId = account("requester", 0, 0);
	requester::<T>(&who, 1);
	let job = submitted::<T>(&who, model, case.input.clone());
	let trace = case.trace().expect("benchmark model executes");
	let mut output = trace.output().to_vec();
	let mut hashes = trace.step_hashes(&case.header).unwrap_or_default();
	let n = case.header.num_ops();
	if step == n {
		if let Some(b) = output.first_mut() {
			*b = b.wrapping_add(1);
		}
	}
	if let Some(h) = hashes.get_mut(step as usize) {
		h[0] ^= 1;
	}
	if let (true, Some(last), Some(h)) =
		(step == n, hashes.last_mut(), verity_primitives::tensor_hash(&case.header, n, &output))
	{
		*last = h;
	}
	assert!(pallet_verity_jobs::Pallet::<T>::commit(
		RawOrigin::Signed(operator).into(),
		job,
		output,
		hashes
	)
	.is_ok());
	let proof = verity_primitives::build_fraud_proof(&case.header, &trace, &case.weights, step)
		.expect("proof");
	(job, proof.encode())
}

/// `who` (funded) commits to `proof` for `job`, and the chain moves to the next block.
fn committed<T: Config>(who: &T::AccountId, job: JobId, proof: &[u8]) {
	fund::<T>(who, T::ProofCommitmentDeposit::get().saturating_mul(2u32.into()));
	let c = Pallet::<T>::commitment(job, who, proof);
	assert!(Pallet::<T>::commit_proof(RawOrigin::Signed(who.clone()).into(), job, c).is_ok());
	let next = frame_system::Pallet::<T>::block_number().saturating_add(1u32.into());
	frame_system::Pallet::<T>::set_block_number(next);
}

/// The most step units a `kind` step of [`kind_model`] can have under the chain's limits.
fn max_units<T: Config>(kind: BenchKind) -> u32 {
	let elements = <T as pallet_verity_models::Config>::MaxTensorElements::get() / 4096;
	let tensors = if kind == BenchKind::Concat { 2 } else { 1 };
	let table = if kind == BenchKind::Lookup { 256 } else { 0 };
	let proof = <T as pallet_verity_models::Config>::MaxStepProofBytes::get().saturating_sub(table)
		/ (4096 * kind.inputs());
	let c = (elements / tensors).min(proof).max(1);
	kind.units_per_channel().saturating_mul(c)
}

/// A fraudulent job whose step 2 is a `kind` step of about `m` units, proven by the whitelisted
/// caller (committed a block before): (caller, job, proof).
fn kind_fraud<T: Config>(kind: BenchKind, m: u32) -> (T::AccountId, JobId, Vec<u8>) {
	let c = (m / kind.units_per_channel()).max(1);
	let (job, proof) = fraudulent::<T>(&kind_model(kind, c, 0), 2);
	let caller: T::AccountId = whitelisted_caller();
	committed::<T>(&caller, job, &proof);
	(caller, job, proof)
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn prove_fraud_bytes(
		b: Linear<2048, { <T as pallet_verity_models::Config>::MaxStepProofBytes::get() }>,
	) {
		let n = (b / 1024).saturating_sub(1).max(1);
		let case = fc_model(1024, n, 0);
		let (job, proof) = fraudulent::<T>(&case, 1);
		let caller: T::AccountId = whitelisted_caller();
		committed::<T>(&caller, job, &proof);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_macs(
		m: Linear<36864, { <T as pallet_verity_models::Config>::MaxStepMacs::get() }>,
	) {
		let c = (m / 36864).max(1);
		// The convolution (step 1) is the one proven wrong.
		let (job, proof) = fraudulent::<T>(&conv_model(c, 0), 1);
		let caller: T::AccountId = whitelisted_caller();
		committed::<T>(&caller, job, &proof);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_add(m: Linear<4096, { max_units::<T>(BenchKind::Add) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::Add, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_max_pool(m: Linear<4096, { max_units::<T>(BenchKind::MaxPool) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::MaxPool, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_avg_pool(m: Linear<4096, { max_units::<T>(BenchKind::AvgPool) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::AvgPool, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_global_avg_pool(m: Linear<4096, { max_units::<T>(BenchKind::GlobalAvgPool) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::GlobalAvgPool, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_reshape(m: Linear<4096, { max_units::<T>(BenchKind::Reshape) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::Reshape, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_concat(m: Linear<4096, { max_units::<T>(BenchKind::Concat) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::Concat, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_lookup(m: Linear<4096, { max_units::<T>(BenchKind::Lookup) }>) {
		let (caller, job, proof) = kind_fraud::<T>(BenchKind::Lookup, m);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	/// The header is decoded on every proof: a header of `h` bytes (two FC ops whose
	/// per-channel parameters make up the size; the proven step's work grows with it too).
	#[benchmark]
	fn prove_fraud_header(
		h: Linear<300, { <T as pallet_verity_models::Config>::MaxHeaderBytes::get() }>,
	) {
		let (job, proof) = fraudulent::<T>(&header_of_size(h, 0), 2);
		let caller: T::AccountId = whitelisted_caller();
		committed::<T>(&caller, job, &proof);

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn commit_proof() {
		let (job, proof) = fraudulent::<T>(&fc_model(16, 4, 0), 1);
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, T::ProofCommitmentDeposit::get().saturating_mul(2u32.into()));
		let c = Pallet::<T>::commitment(job, &caller, &proof);

		#[extrinsic_call]
		commit_proof(RawOrigin::Signed(caller.clone()), job, c);

		assert!(ProofCommitments::<T>::contains_key(&caller, job));
	}

	#[benchmark]
	fn claim_reward() {
		let (job, proof) = fraudulent::<T>(&fc_model(16, 4, 0), 1);
		let prover: T::AccountId = account("prover", 0, 0);
		committed::<T>(&prover, job, &proof);
		assert!(Pallet::<T>::prove_fraud(RawOrigin::Signed(prover).into(), job, proof).is_ok());
		let until = Rewards::<T>::get(job).map(|r| r.until).unwrap_or_default();
		frame_system::Pallet::<T>::set_block_number(until);
		let caller: T::AccountId = whitelisted_caller();

		#[extrinsic_call]
		claim_reward(RawOrigin::Signed(caller), job);

		assert!(Rewards::<T>::get(job).is_none());
	}

	/// The first challenge of a committed generation.
	#[benchmark]
	fn challenge() {
		let operator: T::AccountId = account("operator", 0, 0);
		let (_, job) = committed_generation::<T>(&operator, 1, &some_roots(1));
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, T::ChallengeBond::get().saturating_mul(2u32.into()));

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), job);

		assert!(Games::<T>::contains_key(job, &caller));
	}

	/// The operator reveals `r` position roots (a prompt of `r` tokens, one new token).
	#[benchmark]
	fn reveal_roots(r: Linear<1, { <T as pallet_verity_jobs::Config>::MaxContext::get() }>) {
		let operator: T::AccountId = whitelisted_caller();
		let roots = some_roots(r);
		let (_, job) = committed_generation::<T>(&operator, r, &roots);
		let challenger: T::AccountId = account("challenger", 0, 0);
		fund::<T>(&challenger, T::ChallengeBond::get().saturating_mul(2u32.into()));
		assert!(Pallet::<T>::challenge(RawOrigin::Signed(challenger).into(), job).is_ok());

		#[extrinsic_call]
		_(RawOrigin::Signed(operator), job, roots);

		assert!(Roots::<T>::contains_key(job));
	}

	/// A challenger names a position after the roots' reveal.
	#[benchmark]
	fn name_position() {
		let operator: T::AccountId = account("operator", 0, 0);
		let roots = some_roots(2);
		let (_, job) = committed_generation::<T>(&operator, 2, &roots);
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, T::ChallengeBond::get().saturating_mul(2u32.into()));
		assert!(Pallet::<T>::challenge(RawOrigin::Signed(caller.clone()).into(), job).is_ok());
		assert!(Pallet::<T>::reveal_roots(RawOrigin::Signed(operator).into(), job, roots).is_ok());

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), job, 1);

		assert!(Positions::<T>::contains_key(job, 1));
	}

	/// The operator reveals `l` step hashes of a named position (the position with the fewest
	/// ops not below `l` of a model with the most ops per position).
	#[benchmark]
	fn reveal_position(l: Linear<1, { <T as pallet_verity_models::Config>::MaxLmOps::get() }>) {
		let operator: T::AccountId = whitelisted_caller();
		let challenger: T::AccountId = account("challenger", 0, 0);
		let (job, p, leaves) = named_generation::<T>(&operator, &challenger, l);

		#[extrinsic_call]
		_(RawOrigin::Signed(operator), job, p, leaves);

		assert!(Leaves::<T>::contains_key(job, p));
	}

	/// The costliest end of a game: the operator did not reveal a named position, so the job
	/// is lost (slash, reward, refund, receipt) and the game's bond returned.
	#[benchmark]
	fn settle() {
		let operator: T::AccountId = account("operator", 0, 0);
		let challenger: T::AccountId = account("challenger", 0, 0);
		let (job, _, _) = named_generation::<T>(&operator, &challenger, 1);
		let due = Pallet::<T>::game_stage(job, &challenger).map(|(_, due)| due).expect("game");
		frame_system::Pallet::<T>::set_block_number(due);
		let caller: T::AccountId = whitelisted_caller();

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), job, challenger.clone());

		assert!(!Games::<T>::contains_key(job, &challenger));
		assert!(pallet_verity_jobs::Receipts::<T>::contains_key(job));
	}

	/// The largest step proof: the last attention part at the last position (256 keys and
	/// values, each with its inclusion proof).
	#[benchmark(extra)]
	fn lm_step_attn_part(c: Linear<0, 4>) {
		let case = lm_case(c, |ctx| LmOp::AttnPart(29, 8, (ctx - 1) / 256));
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	/// The merge of a head's attention parts.
	#[benchmark(extra)]
	fn lm_step_attn(c: Linear<0, 4>) {
		let case = lm_case(c, |_| LmOp::Attn(29, 8));
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	/// The most MACs: selecting a token over all 49,152 logits (sampled: top-k 40, top-p).
	#[benchmark(extra)]
	fn lm_step_select(c: Linear<0, 4>) {
		let case = lm_case(c, |_| LmOp::Select);
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	/// 256 rows of the tied LM head (Q8_0 embedding rows).
	#[benchmark(extra)]
	fn lm_step_head(c: Linear<0, 4>) {
		let case = lm_case(c, |_| LmOp::Head(191));
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	/// The token's embedding row (its chunk of 256 rows).
	#[benchmark(extra)]
	fn lm_step_embed(c: Linear<0, 4>) {
		let case = lm_case(c, |_| LmOp::Embed);
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	/// 64 rows of the FFN down projection (Q4_1) plus the residual.
	#[benchmark(extra)]
	fn lm_step_down(c: Linear<0, 4>) {
		let case = lm_case(c, |_| LmOp::Down(29, 8));
		let verdict;

		#[block]
		{
			verdict = judge(&case);
		}

		assert_eq!(verdict, Ok(Verdict::Fraud));
	}

	#[benchmark]
	fn withdraw_commitment() {
		let (job, proof) = fraudulent::<T>(&fc_model(16, 4, 0), 1);
		let prover: T::AccountId = account("prover", 0, 0);
		committed::<T>(&prover, job, &proof);
		let caller: T::AccountId = whitelisted_caller();
		committed::<T>(&caller, job, &proof);
		assert!(Pallet::<T>::prove_fraud(RawOrigin::Signed(prover).into(), job, proof).is_ok());
		let until = Rewards::<T>::get(job).map(|r| r.until).unwrap_or_default();
		frame_system::Pallet::<T>::set_block_number(until);

		#[extrinsic_call]
		withdraw_commitment(RawOrigin::Signed(caller.clone()), job);

		assert!(!ProofCommitments::<T>::contains_key(&caller, job));
	}
}
