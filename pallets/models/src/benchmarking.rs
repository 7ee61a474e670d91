//! Benchmarks of the models pallet (frame-benchmarking v2), plus model builders the other
//! Verity pallets' benchmarks use.

use super::*;
use alloc::vec;
use frame_benchmarking::v2::*;
use frame_support::traits::fungible::Mutate;
use frame_system::RawOrigin;
use verity_primitives::{
	testing::{conv_params, pool_params, same3x3, Kernel, ModelBuilder},
	AddParams, Requant, TensorSpec,
};

const RQ: Requant = Requant { multiplier: 1 << 30, shift: -8 };

/// Give `who` `amount` of free balance on top of the existential deposit.
pub fn fund<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) {
	let ed = <T::Currency as fungible::Inspect<T::AccountId>>::minimum_balance();
	let _ = T::Currency::set_balance(who, amount.saturating_add(ed).saturating_add(ed));
}

/// A model with one FC op `[k] -> [n]` (`salt` varies the id).
pub fn fc_model(k: u32, n: u32, salt: u8) -> verity_primitives::testing::TestCase {
	let mut b = ModelBuilder::new(TensorSpec::new(vec![k], salt as i8, 1.0));
	b.fully_connected(
		0,
		TensorSpec::new(vec![n], 0, 1.0),
		(-128, 127),
		Kernel {
			bias: vec![7; n as usize],
			requant: vec![RQ; n as usize],
			weights: (0..k.saturating_mul(n)).map(|i| (i % 251) as u8).collect(),
		},
	);
	b.finish((0..k).map(|i| (i % 253) as u8).collect())
}

/// A header of about `bytes` bytes: FC `[1] -> [n]` then FC `[n] -> [1]` (the per-channel
/// parameters of the first op make up the size).
pub fn header_of_size(bytes: u32, salt: u8) -> verity_primitives::testing::TestCase {
	let n = (bytes.saturating_sub(200) / 9).max(1);
	let mut b = ModelBuilder::new(TensorSpec::new(vec![1], salt as i8, 1.0));
	b.fully_connected(
		0,
		TensorSpec::new(vec![n], 0, 1.0),
		(-128, 127),
		Kernel {
			bias: vec![1; n as usize],
			requant: vec![RQ; n as usize],
			weights: vec![1; n as usize],
		},
	);
	b.fully_connected(
		1,
		TensorSpec::new(vec![1], 0, 1.0),
		(-128, 127),
		Kernel { bias: vec![1], requant: vec![RQ], weights: vec![1; n as usize] },
	);
	b.finish(vec![1])
}

/// A 3x3 convolution `[16, 16, 16] -> [c, 16, 16]` (step 1: 36,864 MACs per output channel,
/// 4 KiB of input and 144 weight bytes per channel) followed by a global average pool
/// `[c, 16, 16] -> [c]` (step 2), which keeps the model's output small.
pub fn conv_model(c: u32, salt: u8) -> verity_primitives::testing::TestCase {
	let mut b = ModelBuilder::new(TensorSpec::new(vec![16, 16, 16], salt as i8, 1.0));
	b.conv2d(
		0,
		same3x3(1),
		TensorSpec::new(vec![c, 16, 16], 0, 1.0),
		(-128, 127),
		Kernel {
			bias: vec![3; c as usize],
			requant: vec![RQ; c as usize],
			weights: (0..c * 144).map(|i| (i % 239) as u8).collect(),
		},
	);
	b.global_avg_pool(1, TensorSpec::new(vec![c], 0, 1.0), (-128, 127));
	b.finish((0..4096u32).map(|i| (i % 241) as u8).collect())
}

/// The op kinds `prove_fraud` is benchmarked on besides convolutions and fully connected
/// layers ([`kind_model`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BenchKind {
	Add,
	MaxPool,
	AvgPool,
	GlobalAvgPool,
	Reshape,
	Concat,
	Lookup,
}

impl BenchKind {
	/// The step units (`verity_primitives::step_macs`) of the benchmarked step per channel of
	/// [`kind_model`]'s tensor 1 (`[c, 64, 64]`).
	pub fn units_per_channel(self) -> u32 {
		match self {
			BenchKind::MaxPool | BenchKind::AvgPool => 63 * 63 * 4,
			BenchKind::Concat => 2 * 4096,
			_ => 4096,
		}
	}

	/// Inputs of the benchmarked step (each tensor 1).
	pub fn inputs(self) -> u32 {
		match self {
			BenchKind::Add | BenchKind::Concat => 2,
			_ => 1,
		}
	}
}

/// A model whose step 2 is one `kind` op over tensor 1 = `[c, 64, 64]` (made from the
/// `[1, 64, 64]` input by a 1x1 convolution), followed when needed by a global average pool
/// that keeps the output small. Pools use 2x2 windows with stride 1 (the most work per window
/// element); Add and Concat read tensor 1 twice.
pub fn kind_model(kind: BenchKind, c: u32, salt: u8) -> verity_primitives::testing::TestCase {
	let plane = |ch: u32| TensorSpec::new(vec![ch, 64, 64], 0, 1.0);
	let mut b = ModelBuilder::new(TensorSpec::new(vec![1, 64, 64], salt as i8, 1.0));
	b.conv2d(
		0,
		conv_params((1, 1), (1, 1), (1, 1), [0; 4], 1),
		plane(c),
		(-128, 127),
		Kernel {
			bias: vec![3; c as usize],
			requant: vec![RQ; c as usize],
			weights: (0..c).map(|i| (i % 239) as u8 | 1).collect(),
		},
	);
	let channels = match kind {
		BenchKind::Add => {
			let p = AddParams {
				left_shift: 20,
				lhs: Requant { multiplier: 1 << 30, shift: -1 },
				rhs: Requant { multiplier: 1_500_000_000, shift: -1 },
			};
			let out_rq = Requant { multiplier: 1_700_000_000, shift: -19 };
			b.add([1, 1], p, plane(c), (-128, 127), out_rq);
			c
		},
		BenchKind::MaxPool | BenchKind::AvgPool => {
			let p = pool_params((2, 2), (1, 1), [0; 4]);
			let out = TensorSpec::new(vec![c, 63, 63], 0, 1.0);
			if kind == BenchKind::MaxPool {
				b.max_pool(1, p, out, (-128, 127));
			} else {
				b.avg_pool(1, p, out, (-128, 127));
			}
			c
		},
		BenchKind::GlobalAvgPool => {
			b.global_avg_pool(1, TensorSpec::new(vec![c], 0, 1.0), (-128, 127));
			return b.finish((0..4096u32).map(|i| (i % 241) as u8).collect());
		},
		BenchKind::Reshape => {
			b.reshape(1, TensorSpec::new(vec![c, 4096, 1], 0, 1.0), (-128, 127));
			c
		},
		BenchKind::Concat => {
			b.concat(vec![1, 1], 0, plane(2 * c), (-128, 127));
			2 * c
		},
		BenchKind::Lookup => {
			let table = (0..256u32).map(|i| (i * 7 % 256) as u8).collect();
			b.lookup(1, plane(c), (-128, 127), table);
			c
		},
	};
	b.global_avg_pool(2, TensorSpec::new(vec![channels], 0, 1.0), (-128, 127));
	b.finish((0..4096u32).map(|i| (i % 241) as u8).collect())
}

/// A small transformer header (weights root zero: only its header is registered) with
/// `max_context` positions and attention in blocks of `attn_block`.
pub fn text_header(max_context: u32, attn_block: u32) -> verity_primitives::lm::header::LmHeader {
	use verity_primitives::lm::{
		header::{LayerFormats, LmHeader, LM_HEADER_VERSION},
		quant::BlockFormat,
	};
	LmHeader {
		version: LM_HEADER_VERSION,
		dim: 32,
		n_layers: 1,
		n_heads: 2,
		n_kv_heads: 1,
		head_dim: 16,
		ffn_dim: 32,
		vocab: 64,
		max_context,
		norm_eps: 42950,
		attn_scale_q16: 16384,
		rope_inv_freq: vec![1 << 32; 8],
		embedding: BlockFormat::Q8_0,
		layers: vec![LayerFormats::uniform(BlockFormat::Q8_0)],
		chunk_rows: 32,
		vocab_chunk_rows: 32,
		attn_block,
		eos_tokens: vec![1],
		tokenizer_hash: [0; 32],
		chat_template_hash: [0; 32],
		weights_root: [0; 32],
	}
}

/// Register a text model of `max_context` positions with the most ops per position the chain's
/// language-model limits admit (the smallest admitted attention block); returns its id and
/// header.
pub fn text_model<T: Config>(
	publisher: &T::AccountId,
	max_context: u32,
) -> (ModelId, verity_primitives::lm::header::LmHeader) {
	let limits = Pallet::<T>::lm_limits();
	let h = (1..=max_context)
		.map(|b| text_header(max_context, b))
		.find(|h| verity_primitives::lm::validate::validate_lm(h, &limits).is_ok())
		.expect("a text header fits the chain's limits");
	let header = h.encode();
	fund::<T>(publisher, Pallet::<T>::deposit_for(header.len()));
	match Pallet::<T>::do_register(publisher.clone(), header, vec![], vec![], Zero::zero()) {
		Ok(id) => (id, h),
		Err(e) => panic!("benchmark text model does not register: {e:?}"),
	}
}

/// Register `case` for `publisher` (funded as needed); returns the id.
pub fn register_case<T: Config>(
	publisher: &T::AccountId,
	case: &verity_primitives::testing::TestCase,
) -> ModelId {
	let header = case.header.encode();
	fund::<T>(publisher, Pallet::<T>::deposit_for(header.len()));
	match Pallet::<T>::do_register(publisher.clone(), header, vec![], vec![], Zero::zero()) {
		Ok(id) => id,
		Err(e) => panic!("benchmark model does not register: {e:?}"),
	}
}

/// `who` announces the registration of `model`, and the chain moves to the next block.
fn announced<T: Config>(who: &T::AccountId, model: &ModelId) {
	let a = Pallet::<T>::announcement(who, model);
	assert!(Pallet::<T>::announce(RawOrigin::Signed(who.clone()).into(), a).is_ok());
	let next = frame_system::Pallet::<T>::block_number().saturating_add(1u32.into());
	frame_system::Pallet::<T>::set_block_number(next);
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn register(
		h: Linear<300, { T::MaxHeaderBytes::get() }>,
		m: Linear<0, { T::MaxNameLen::get() + T::MaxUriLen::get() }>,
	) {
		let caller: T::AccountId = whitelisted_caller();
		let case = header_of_size(h, 0);
		let header = case.header.encode();
		let name_len = m.min(T::MaxNameLen::get());
		let name = vec![b'n'; name_len as usize];
		let uri = vec![b'u'; (m - name_len) as usize];
		let deposit = Pallet::<T>::deposit_for(header.len() + m as usize);
		fund::<T>(&caller, deposit.saturating_add(T::DepositBase::get()));
		announced::<T>(&caller, &case.header.id());

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), header, name, uri);

		assert!(Models::<T>::contains_key(case.header.id()));
	}

	#[benchmark]
	fn retire() {
		let caller: T::AccountId = whitelisted_caller();
		let id = register_case::<T>(&caller, &header_of_size(1000, 0));

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id);

		assert_eq!(Models::<T>::get(id).map(|r| r.status), Some(ModelStatus::Retired));
	}

	#[benchmark]
	fn reap() {
		let caller: T::AccountId = whitelisted_caller();
		let id = register_case::<T>(&caller, &header_of_size(1000, 0));
		assert!(Pallet::<T>::retire(RawOrigin::Signed(caller.clone()).into(), id).is_ok());

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id);

		assert!(!Models::<T>::contains_key(id));
	}

	#[benchmark]
	fn announce() {
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, T::DepositBase::get());
		let a = Pallet::<T>::announcement(&caller, &[1; 32]);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), a);

		assert!(Announcements::<T>::contains_key(&caller, a));
	}

	#[benchmark]
	fn withdraw_announcement() {
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, T::DepositBase::get());
		let a = Pallet::<T>::announcement(&caller, &[1; 32]);
		announced::<T>(&caller, &[1; 32]);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), a);

		assert!(!Announcements::<T>::contains_key(&caller, a));
	}

	/// Worst case: the largest header is decoded to find the op.
	#[benchmark]
	fn challenge_weights(h: Linear<300, { T::MaxHeaderBytes::get() }>) {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let caller: T::AccountId = whitelisted_caller();
		let case = header_of_size(h, 0);
		let id = register_case::<T>(&publisher, &case);
		let weight_len = case.header.ops[1].weight_len;
		fund::<T>(&caller, Pallet::<T>::availability_bond(weight_len));

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id, 2);

		assert!(WeightChallenges::<T>::contains_key(id, 2));
	}

	/// `w` weight bytes are posted and hashed (an FC op `[w / 64] -> [64]`).
	#[benchmark]
	fn post_weights(w: Linear<64, { T::MaxStepProofBytes::get() / 65 * 64 }>) {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let challenger: T::AccountId = account("challenger", 0, 0);
		let caller: T::AccountId = whitelisted_caller();
		let case = fc_model(w / 64, 64, 0);
		let id = register_case::<T>(&publisher, &case);
		fund::<T>(&challenger, Pallet::<T>::availability_bond(case.header.ops[0].weight_len));
		assert!(Pallet::<T>::challenge_weights(RawOrigin::Signed(challenger).into(), id, 1).is_ok());
		let weights = case.weights[0].clone();

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id, 1, weights);

		assert!(!WeightChallenges::<T>::contains_key(id, 1));
	}

	#[benchmark]
	fn claim_withheld() {
		let publisher: T::AccountId = account("publisher", 0, 0);
		let challenger: T::AccountId = account("challenger", 0, 0);
		let caller: T::AccountId = whitelisted_caller();
		let case = header_of_size(1000, 0);
		let id = register_case::<T>(&publisher, &case);
		fund::<T>(&challenger, Pallet::<T>::availability_bond(case.header.ops[1].weight_len));
		assert!(Pallet::<T>::challenge_weights(RawOrigin::Signed(challenger).into(), id, 2).is_ok());
		let after = frame_system::Pallet::<T>::block_number()
			.saturating_add(T::AvailabilityPeriod::get())
			.saturating_add(1u32.into());
		frame_system::Pallet::<T>::set_block_number(after);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id, 2);

		assert_eq!(Models::<T>::get(id).map(|r| r.status), Some(ModelStatus::Withheld { op: 2 }));
	}
}
