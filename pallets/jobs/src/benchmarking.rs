//! Benchmarks of the jobs pallet (frame-benchmarking v2): `submit` over input size and server
//! count, `commit` over output size and step count, `on_initialize` over finalizations
//! (`on_initialize_finalized`) and over missed deadlines (`on_initialize_missed`: with
//! re-assignment, the expensive path; the largest inputs and the most servers), `prune_receipts` over the receipts pruned (each with the largest output).

use super::*;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_system::RawOrigin;
use pallet_verity_models::benchmarking::{fc_model, fund, register_case, text_model};
use pallet_verity_operators::benchmarking::bonded;
use verity_primitives::{testing::ModelBuilder, TensorSpec};

/// An operator that can take `jobs` jobs, serving `model` at price 1.
pub fn serving<T: Config>(who: &T::AccountId, model: ModelId, jobs: u32) {
	let min = <T as pallet_verity_operators::Config>::MinBond::get();
	let per_job = T::JobCollateral::get();
	let times = per_job
		.saturating_mul(jobs.into())
		.checked_div(&min)
		.map(|t| t.saturated_into::<u32>())
		.unwrap_or(0)
		.saturating_add(1);
	bonded::<T>(who, times);
	assert!(pallet_verity_operators::Pallet::<T>::serve(
		RawOrigin::Signed(who.clone()).into(),
		model,
		1u32.into()
	)
	.is_ok());
}

/// A requester that can pay `jobs` jobs at `max_fee` 10.
pub fn requester<T: Config>(who: &T::AccountId, jobs: u32) {
	fund::<T>(who, BalanceOf::<T>::from(10u32).saturating_mul(jobs.into()));
}

/// Submit a job; returns its id.
pub fn submitted<T: Config>(who: &T::AccountId, model: ModelId, input: Vec<u8>) -> JobId {
	let id = NextJobId::<T>::get();
	let r = Pallet::<T>::submit(RawOrigin::Signed(who.clone()).into(), model, input, 10u32.into());
	assert!(r.is_ok(), "benchmark job submits: {r:?}");
	id
}

/// A model of `h - 1` reshape ops over `[o]` (output `o` bytes, `h` step hashes).
fn reshapes(o: u32, h: u32) -> verity_primitives::testing::TestCase {
	let mut b = ModelBuilder::new(TensorSpec::new(vec![o], 0, 1.0));
	for i in 1..h {
		b.reshape(i - 1, TensorSpec::new(vec![o], 0, 1.0), (-128, 127));
	}
	b.finish((0..o).map(|i| i as u8).collect())
}

/// A text model of `MaxContext` positions served at price 1 per position by `operator`; a
/// generation of `prompt` tokens (id 5) and at most `max_new` new ones submitted by
/// `requester`. Returns the model's header and the job.
pub fn generation<T: Config>(
	operator: &T::AccountId,
	requester: &T::AccountId,
	prompt: u32,
	max_new: u32,
) -> (verity_primitives::lm::header::LmHeader, JobId) {
	let publisher: T::AccountId = account("publisher", 0, 0);
	let (model, header) = text_model::<T>(&publisher, T::MaxContext::get());
	let units = prompt.saturating_add(max_new);
	let max_fee: BalanceOf<T> = units.into();
	serving::<T>(operator, model, 1);
	fund::<T>(requester, max_fee.saturating_mul(2u32.into()));
	let id = NextJobId::<T>::get();
	let r = Pallet::<T>::submit_generation(
		RawOrigin::Signed(requester.clone()).into(),
		model,
		vec![5; prompt as usize],
		max_new,
		SamplingParams::GREEDY,
		max_fee,
	);
	assert!(r.is_ok(), "benchmark generation submits: {r:?}");
	(header, id)
}

/// [`generation`] with a prompt of `prompt` tokens and one new token, committed with
/// `roots` as its position roots (`prompt` of them): returns the header and the job.
pub fn committed_generation<T: Config>(
	operator: &T::AccountId,
	prompt: u32,
	roots: &[Hash],
) -> (verity_primitives::lm::header::LmHeader, JobId) {
	let requester: T::AccountId = account("requester", 0, 0);
	let (header, job) = generation::<T>(operator, &requester, prompt, 1);
	let root = verity_primitives::lm::trace::job_root(roots);
	let r = Pallet::<T>::commit_generation(
		RawOrigin::Signed(operator.clone()).into(),
		job,
		vec![5],
		root,
	);
	assert!(r.is_ok(), "benchmark generation commits: {r:?}");
	(header, job)
}

fn max_jobs<T: Config>() -> u32 {
	T::MaxJobsPerBlock::get() / 2
}

use sp_runtime::{traits::CheckedDiv, SaturatedConversion};

/// `f` committed jobs whose windows end and `m` uncommitted jobs whose deadlines pass at the
/// returned block, all of a model with the largest inputs served by `MaxServersPerModel`
/// operators (every server can take every job: a missed job goes to another one).
fn due_jobs<T: Config>(f: u32, m: u32) -> BlockNumberFor<T> {
	let publisher: T::AccountId = account("publisher", 0, 0);
	let input = <T as pallet_verity_models::Config>::MaxInputBytes::get();
	let case = fc_model(input, 1, 0);
	let model = register_case::<T>(&publisher, &case);
	for n in 0..<T as pallet_verity_operators::Config>::MaxServersPerModel::get() {
		serving::<T>(&account("operator", n, 0), model, f + 2 * m + 1);
	}
	let who: T::AccountId = account("requester", 0, 0);
	requester::<T>(&who, f + m);
	let trace = case.trace().expect("benchmark model executes");
	let hashes = trace.step_hashes(&case.header).unwrap_or_default();
	let output = trace.output().to_vec();
	let start: BlockNumberFor<T> = 1u32.into();
	frame_system::Pallet::<T>::set_block_number(start);
	for _ in 0..f {
		let job = submitted::<T>(&who, model, case.input.clone());
		let op = Jobs::<T>::get(job).map(|j| j.operator).expect("job");
		assert!(Pallet::<T>::commit(
			RawOrigin::Signed(op).into(),
			job,
			output.clone(),
			hashes.clone()
		)
		.is_ok());
	}
	let due = start.saturating_add(T::ChallengeWindow::get());
	frame_system::Pallet::<T>::set_block_number(due.saturating_sub(T::ExecutionDeadline::get()));
	for _ in 0..m {
		submitted::<T>(&who, model, case.input.clone());
	}
	frame_system::Pallet::<T>::set_block_number(due);
	assert_eq!(Queue::<T>::get(due).len() as u32, f + m);
	due
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn submit(
		i: Linear<1, { <T as pallet_verity_models::Config>::MaxInputBytes::get() }>,
		s: Linear<1, { <T as pallet_verity_operators::Config>::MaxServersPerModel::get() }>,
	) {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let case = fc_model(i, 1, 0);
		let model = register_case::<T>(&publisher, &case);
		for n in 0..s {
			serving::<T>(&account("operator", n, 0), model, 1);
		}
		let caller: T::AccountId = whitelisted_caller();
		requester::<T>(&caller, 1);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), model, case.input.clone(), 10u32.into());

		assert!(Jobs::<T>::contains_key(0));
	}

	#[benchmark]
	fn commit(
		o: Linear<1, { <T as pallet_verity_models::Config>::MaxOutputBytes::get() }>,
		h: Linear<2, { <T as pallet_verity_models::Config>::MaxOps::get() + 1 }>,
	) {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let case = reshapes(o, h);
		let model = register_case::<T>(&publisher, &case);
		let operator: T::AccountId = whitelisted_caller();
		serving::<T>(&operator, model, 1);
		let who: T::AccountId = account("requester", 0, 0);
		requester::<T>(&who, 1);
		let job = submitted::<T>(&who, model, case.input.clone());
		let trace = case.trace().expect("benchmark model executes");
		let hashes = trace.step_hashes(&case.header).unwrap_or_default();
		let output = trace.output().to_vec();

		#[extrinsic_call]
		_(RawOrigin::Signed(operator), job, output, hashes);

		assert!(StepHashes::<T>::contains_key(job));
	}

	/// A generation of `p` prompt tokens (and one new token) among `s` servers.
	#[benchmark]
	fn submit_generation(
		p: Linear<1, { T::MaxContext::get() }>,
		s: Linear<1, { <T as pallet_verity_operators::Config>::MaxServersPerModel::get() }>,
	) {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let (model, _) = text_model::<T>(&publisher, T::MaxContext::get());
		for n in 0..s {
			serving::<T>(&account("operator", n, 0), model, 1);
		}
		let caller: T::AccountId = whitelisted_caller();
		let max_fee: BalanceOf<T> = p.saturating_add(1).into();
		fund::<T>(&caller, max_fee.saturating_mul(2u32.into()));

		#[extrinsic_call]
		_(
			RawOrigin::Signed(caller),
			model,
			vec![5; p as usize],
			1,
			SamplingParams::GREEDY,
			max_fee,
		);

		assert!(Generations::<T>::contains_key(0));
	}

	/// A commitment of `n` tokens (no end-of-sequence token: `max_new_tokens` of them).
	#[benchmark]
	fn commit_generation(n: Linear<1, { Pallet::<T>::max_new_tokens() }>) {
		let operator: T::AccountId = whitelisted_caller();
		let requester: T::AccountId = account("requester", 0, 0);
		let (_, job) = generation::<T>(&operator, &requester, 1, n);

		#[extrinsic_call]
		_(RawOrigin::Signed(operator), job, vec![5; n as usize], [7; 32]);

		assert!(matches!(Jobs::<T>::get(job).map(|j| j.status), Some(JobStatus::Committed { .. })));
	}

	/// `on_initialize` finalizing `f` jobs whose windows end now. Worst case: the largest
	/// inputs (each finalized job reads and writes `MaxInputBytes`). One component per benchmark
	/// (the hook's weight is the sum of this and `on_initialize_missed`): with both in one
	/// benchmark, each is varied while the other is at its maximum and the fitted base is an
	/// extrapolation (it came out at 176 ms, charged to every block with a stale queue entry).
	#[benchmark]
	fn on_initialize_finalized(f: Linear<0, { max_jobs::<T>() }>) {
		let due = due_jobs::<T>(f, 0);

		#[block]
		{
			Pallet::<T>::hook(due, Weight::MAX);
		}

		assert_eq!(Receipts::<T>::iter().count() as u32, f);
	}

	/// `on_initialize` handling `m` missed deadlines. Worst case: the largest inputs and
	/// `MaxServersPerModel` servers (a missed deadline re-runs `select` over all of them).
	#[benchmark]
	fn on_initialize_missed(m: Linear<0, { max_jobs::<T>() }>) {
		let due = due_jobs::<T>(0, m);

		#[block]
		{
			Pallet::<T>::hook(due, Weight::MAX);
		}

		assert_eq!(Jobs::<T>::iter().filter(|(_, j)| j.missed.len() == 1).count() as u32, m);
	}

	#[benchmark]
	fn prune_receipts(p: Linear<0, { T::MaxJobsPerBlock::get() }>) {
		let who: T::AccountId = account("requester", 0, 0);
		let closed: BlockNumberFor<T> = 1u32.into();
		let output =
			vec![0x5a; <T as pallet_verity_models::Config>::MaxOutputBytes::get() as usize];
		// p + 1 receipts: the hook prunes p and reads the next one, whose time has not come.
		for job in 0..=u64::from(p) {
			let closed_at =
				if job < u64::from(p) { closed } else { closed.saturating_add(1u32.into()) };
			Pallet::<T>::keep_receipt(
				job,
				Receipt {
					requester: who.clone(),
					model: [7; 32],
					operator: who.clone(),
					output: BoundedVec::truncate_from(output.clone()),
					trace_root: Some([9; 32]),
					fee: 10u32.into(),
					closed_at,
					outcome: Outcome::Fraud { prover: who.clone(), step: u32::MAX },
				},
			);
		}
		let now = closed.saturating_add(T::ReceiptRetention::get());

		#[block]
		{
			Pallet::<T>::prune_receipts(now, T::MaxJobsPerBlock::get());
		}

		assert_eq!(ReceiptDigests::<T>::iter().count() as u32, p);
		assert_eq!(Receipts::<T>::iter().count(), 1);
	}
}
