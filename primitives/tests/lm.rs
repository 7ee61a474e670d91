//! Transformer generations on random tiny models: honest proofs never show fraud, a wrong
//! step hash is provable at that step, a corrupted KV read is provable at the step that reads
//! it, tampered proofs are rejected, and validation's costs bound the real proofs.

use codec::Encode;
use verity_primitives::decode_canonical;
use verity_primitives::{
	lm::{
		graph::{op_at, op_index, op_inputs, ops_at, LmOp, Shape},
		interp::{execute_op, gather_inputs, generate, step_chunks, LmJob, LmTrace},
		trace::{
			build_step_proof, check_step_proof, find_lm_fraud, job_root, lm_step_hash,
			LmProofError, LmStepProof, ProverTrees,
		},
		validate::{step_cost, validate_lm},
	},
	testing::{
		lm::{random_lm_case, smollm2_135m_header, synthetic_step_proof, LmCase},
		Rng,
	},
	Limits, Verdict,
};

/// Random models per test (fewer in unoptimized builds, where `i128` arithmetic is slow;
/// `cargo test --release` runs them all).
const SEEDS: u64 = if cfg!(debug_assertions) { 12 } else { 40 };

/// The honest trace, its step hashes `[position][op]` and its position roots.
type Honest = (LmTrace, Vec<Vec<[u8; 32]>>, Vec<[u8; 32]>);

fn honest(case: &LmCase) -> Honest {
	let trace = generate(&case.header, &case.chunks, &case.job).expect("honest generation");
	let leaves = trace.step_hashes();
	let roots = trace.position_roots();
	(trace, leaves, roots)
}

fn all_steps(case: &LmCase, positions: usize) -> Vec<(u32, u32)> {
	let mut steps = Vec::new();
	for t in 0..positions as u32 {
		let n = ops_at(&case.header, Shape::at(&case.header, case.job.prompt_len(), t));
		steps.extend((0..n as u32).map(|i| (t, i)));
	}
	steps
}

fn proof(
	case: &LmCase,
	trees: &ProverTrees,
	trace: &LmTrace,
	leaves: &[Vec<[u8; 32]>],
	t: u32,
	i: u32,
) -> LmStepProof {
	build_step_proof(&case.header, &case.chunks, &case.job, trace, leaves, trees, t, i)
		.expect("proof")
}

#[test]
fn random_cases_validate_and_generate() {
	let mut lengths = std::collections::BTreeSet::new();
	let mut layouts = std::collections::BTreeSet::new();
	for seed in 0..SEEDS {
		let case = random_lm_case(seed);
		let h = &case.header;
		validate_lm(h, &Limits::default()).expect("valid");
		let (trace, leaves, roots) = honest(&case);
		let p = case.job.prompt_len() as usize;
		// Stop conditions: EOS (last token only), max_new_tokens, or the context is full.
		let n = trace.tokens.len();
		assert!(n >= 1 && n <= case.job.max_new_tokens as usize);
		assert_eq!(trace.outputs.len(), p - 1 + n);
		let eos_at = trace.tokens.iter().position(|t| h.eos_tokens.contains(t));
		assert!(eos_at.is_none_or(|i| i == n - 1), "tokens after EOS");
		let ended = eos_at.is_some()
			|| n == case.job.max_new_tokens as usize
			|| trace.outputs.len() == h.max_context as usize;
		assert!(ended, "seed {seed}: stopped early");
		assert_eq!(leaves.len(), roots.len());
		// Deterministic.
		let again = generate(h, &case.chunks, &case.job).unwrap();
		assert_eq!(again, trace);
		assert_eq!(job_root(&again.position_roots()), job_root(&roots));
		lengths.insert(n);
		layouts.insert((h.n_heads, h.n_kv_heads, h.n_layers));
	}
	assert!(lengths.len() > 2, "{lengths:?}");
	assert!(layouts.iter().any(|&(q, kv, _)| q > kv && kv > 1), "no grouped-query layout");
	assert!(layouts.iter().any(|&(_, _, l)| l == 3));
}

#[test]
fn honest_proofs_never_show_fraud() {
	let mut checked = 0;
	for seed in 0..SEEDS {
		let case = random_lm_case(seed);
		let (trace, leaves, roots) = honest(&case);
		let trees = ProverTrees::new(&case.chunks, &leaves);
		let steps = all_steps(&case, trace.outputs.len());
		let mut rng = Rng::new(seed);
		for &(t, i) in &steps {
			// Every step of the first cases, a sample of the others.
			if seed >= 3 && !rng.chance(15) {
				continue;
			}
			let p = proof(&case, &trees, &trace, &leaves, t, i);
			let verdict = check_step_proof(&case.header, &case.job, &roots, &p);
			assert_eq!(verdict, Ok(Verdict::NoFraud), "seed {seed} step ({t}, {i})");
			// The real proof is within validation's bound for that step.
			let shape = Shape::at(&case.header, case.job.prompt_len(), t);
			let op = op_at(&case.header, shape, i).unwrap();
			let bound = step_cost(&case.header, t, op).unwrap().proof_bytes;
			assert!(p.encoded_size() as u64 <= bound, "{op:?}: {} > {bound}", p.encoded_size());
			checked += 1;
		}
	}
	assert!(checked > 50 * SEEDS, "{checked}");
}

#[test]
fn a_wrong_step_hash_is_provable_at_that_step() {
	for seed in 0..SEEDS {
		let case = random_lm_case(seed);
		let (trace, leaves, _) = honest(&case);
		assert_eq!(find_lm_fraud(&case.header, &case.chunks, &case.job, &leaves), Ok(None));
		let steps = all_steps(&case, trace.outputs.len());
		let mut rng = Rng::new(seed ^ 77);
		for _ in 0..4 {
			let (t, i) = steps[rng.below(steps.len() as u64) as usize];
			let mut bad = leaves.clone();
			bad[t as usize][i as usize][0] ^= 1;
			let roots: Vec<_> =
				bad.iter().map(|l| verity_primitives::lm::trace::position_root(l)).collect();
			let p = find_lm_fraud(&case.header, &case.chunks, &case.job, &bad)
				.unwrap()
				.expect("fraud found");
			assert_eq!((p.position, p.op), (t, i));
			assert_eq!(
				check_step_proof(&case.header, &case.job, &roots, &p),
				Ok(Verdict::Fraud),
				"seed {seed} ({t}, {i})"
			);
		}
	}
}

/// The operator commits honest K/V entries but reads a corrupted one at a later step (the
/// attention part of the block holding that position, at the same or a later position): the
/// step that read it wrongly is provable with the honest (committed) entry.
#[test]
fn a_corrupted_kv_read_is_provable_where_it_is_read() {
	let (mut proven, mut skipped) = (0, Vec::new());
	for seed in 0..SEEDS {
		let case = random_lm_case(seed);
		let h = &case.header;
		let (trace, leaves, _) = honest(&case);
		let positions = trace.outputs.len() as u32;
		let mut rng = Rng::new(seed ^ 99);
		// Try random corruptions until one changes the output of the reading step (a value
		// whose softmax weight rounds to 0, or a key when there is one position, cannot).
		let mut found = None;
		for _ in 0..32 {
			let p = rng.below(u64::from(positions)) as u32;
			let t = p + rng.below(u64::from(positions - p)) as u32;
			let l = rng.below(u64::from(h.n_layers)) as u32;
			let head = rng.below(u64::from(h.n_heads)) as u32;
			// The part that reads position p's entry, and p's place in its groups.
			let block = p / h.attn_block;
			let shape = Shape::at(h, case.job.prompt_len(), t);
			let attn = op_index(h, shape, LmOp::AttnPart(l, head, block)).unwrap();
			let entry = (p - block * h.attn_block) as usize;
			// The key (group 1) or value (group 2) of position p as read by the part at t: the
			// high byte of one element, a change of 2^29 (8192.0 in Q16).
			let mut inputs = gather_inputs(h, &case.job, &trace, t, attn).unwrap();
			let group = 1 + rng.below(2) as usize;
			let element = rng.below(u64::from(h.head_dim)) as usize;
			inputs[group][(entry * h.head_dim as usize + element) * 4 + 3] ^= 0x20;
			let wrong = execute_op(h, &case.job, t, attn, &inputs, &[]).unwrap();
			if lm_step_hash(&wrong) != leaves[t as usize][attn as usize] {
				found = Some((p, t, attn, group, entry, wrong));
				break;
			}
		}
		let Some((p, t, attn, group, entry, wrong)) = found else {
			skipped.push(seed);
			continue;
		};
		let mut bad = leaves.clone();
		bad[t as usize][attn as usize] = lm_step_hash(&wrong);
		let roots: Vec<_> =
			bad.iter().map(|l| verity_primitives::lm::trace::position_root(l)).collect();
		let proof = find_lm_fraud(h, &case.chunks, &case.job, &bad).unwrap().unwrap();
		assert_eq!((proof.position, proof.op), (t, attn));
		// The proof carries the committed (honest) entry of position p.
		assert_eq!(proof.inputs[group][entry].position, p);
		assert_eq!(check_step_proof(h, &case.job, &roots, &proof), Ok(Verdict::Fraud));
		proven += 1;
	}
	assert!(proven * 10 >= SEEDS * 9, "{proven} {skipped:?}");
	eprintln!("kv corruption proven in {proven} of {SEEDS} models, none found in {skipped:?}");
}

#[test]
fn tampered_proofs_are_rejected_never_judged() {
	for seed in 0..SEEDS {
		let case = random_lm_case(seed);
		let h = &case.header;
		let (trace, leaves, roots) = honest(&case);
		let trees = ProverTrees::new(&case.chunks, &leaves);
		let steps = all_steps(&case, trace.outputs.len());
		let mut rng = Rng::new(seed ^ 5);
		for _ in 0..6 {
			let (t, i) = steps[rng.below(steps.len() as u64) as usize];
			let good = proof(&case, &trees, &trace, &leaves, t, i);
			let check = |p: &LmStepProof| check_step_proof(h, &case.job, &roots, p);
			assert_eq!(check(&good), Ok(Verdict::NoFraud));
			let mut tampered: Vec<LmStepProof> = Vec::new();
			let mut p = good.clone();
			p.committed[3] ^= 1;
			tampered.push(p);
			let mut p = good.clone();
			p.committed_proof.leaf_index ^= 1;
			tampered.push(p);
			let non_empty: Vec<usize> =
				(0..good.inputs.len()).filter(|&g| !good.inputs[g].is_empty()).collect();
			if !non_empty.is_empty() {
				let g = non_empty[rng.below(non_empty.len() as u64) as usize];
				let k = rng.below(good.inputs[g].len() as u64) as usize;
				let mut p = good.clone();
				let n = p.inputs[g][k].data.len();
				p.inputs[g][k].data[rng.below(n as u64) as usize] ^= 0x10;
				tampered.push(p);
				let mut p = good.clone();
				p.inputs[g][k].data.push(0);
				tampered.push(p);
				let mut p = good.clone();
				if let Some(s) = p.inputs[g][k].proof.siblings.first_mut() {
					s[0] ^= 1;
					tampered.push(p);
				}
				let mut p = good.clone();
				p.inputs[g][k].position = p.inputs[g][k].position.wrapping_add(1);
				tampered.push(p);
				let mut p = good.clone();
				p.inputs[g].pop();
				tampered.push(p);
				let mut p = good.clone();
				p.inputs.pop();
				tampered.push(p);
			}
			if !good.weights.is_empty() {
				let mut p = good.clone();
				let n = p.weights[0].data.len();
				p.weights[0].data[rng.below(n as u64) as usize] ^= 0x01;
				tampered.push(p);
				let mut p = good.clone();
				p.weights[0].proof.leaf_count += 1;
				tampered.push(p);
				let mut p = good.clone();
				p.weights.pop();
				tampered.push(p);
			}
			let mut p = good.clone();
			p.op = p.op.wrapping_add(1);
			tampered.push(p);
			let mut p = good.clone();
			p.position = roots.len() as u32;
			tampered.push(p);
			for (n, p) in tampered.iter().enumerate() {
				let verdict = check(p);
				assert!(verdict.is_err(), "seed {seed} ({t}, {i}) tamper {n}: {verdict:?}");
			}
			// Wrong job or roots: rejected too.
			let mut job = case.job.clone();
			job.prompt.clear();
			assert_eq!(check_step_proof(h, &job, &roots, &good), Err(LmProofError::BadJob));
		}
	}
}

/// The executor's own checks: wrong input lengths and missing weights are errors, not panics.
#[test]
fn malformed_step_inputs_are_errors() {
	let case = random_lm_case(3);
	let h = &case.header;
	let (trace, _, _) = honest(&case);
	for (t, i) in all_steps(&case, trace.outputs.len()) {
		let inputs = gather_inputs(h, &case.job, &trace, t, i).unwrap();
		let chunks: Vec<Vec<u8>> = step_chunks(h, &case.job, t, i, &inputs)
			.unwrap()
			.into_iter()
			.map(|(_, c)| case.chunks[c as usize].clone())
			.collect();
		let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
		assert!(execute_op(h, &case.job, t, i, &inputs, &refs).is_ok());
		if !inputs.is_empty() {
			let mut short = inputs.clone();
			let n = short[0].len() - 4;
			short[0].truncate(n);
			let op = op_at(h, Shape::at(h, case.job.prompt_len(), t), i).unwrap();
			if !matches!(op, LmOp::Embed) {
				assert!(execute_op(h, &case.job, t, i, &short, &refs).is_err(), "{op:?}");
			}
		}
		if !refs.is_empty() {
			assert!(execute_op(h, &case.job, t, i, &inputs, &[]).is_err());
		}
		let _ = op_inputs(h, case.job.prompt_len(), t, LmOp::Embed);
	}
	let bad = LmJob { max_new_tokens: 0, ..case.job.clone() };
	assert!(generate(h, &case.chunks, &bad).is_err());
}

/// The largest steps of SmolLM2-135M (printed with `--nocapture`), with attention in one part
/// and in blocks of 256 positions, and validation against limits in between.
#[test]
fn smollm2_step_costs() {
	for (ctx, block) in
		[(512u32, 512), (1024, 1024), (2048, 2048), (512, 256), (1024, 256), (2048, 256)]
	{
		let h = smollm2_135m_header(ctx, block);
		let info = validate_lm(&h, &Limits::UNLIMITED).unwrap();
		println!(
			"SmolLM2-135M ctx {ctx} attn_block {block}: header {} B, {} ops/position ({} \
			 sampling), {} weight chunks, {} weight bytes; largest proof {} B ({:?}), largest \
			 MACs {} ({:?})",
			info.header_bytes,
			info.ops_per_position,
			info.ops_per_sampling_position,
			info.weight_chunks,
			info.total_weight_bytes,
			info.max_step_proof_bytes,
			info.max_proof_op,
			info.max_step_macs,
			info.max_macs_op,
		);
		for op in [
			LmOp::Embed,
			LmOp::Q(0, 0),
			LmOp::AttnPart(0, 0, 0),
			LmOp::Attn(0, 0),
			LmOp::OProj(1, 0),
			LmOp::GateUp(0, 0),
			LmOp::Down(0, 0),
			LmOp::Head(0),
			LmOp::Select,
		] {
			let c = step_cost(&h, ctx - 1, op).unwrap();
			println!(
				"  {op:?}: inputs {} B in {} refs, weights {} B, proof <= {} B, {} MACs",
				c.input_bytes, c.input_refs, c.weight_bytes, c.proof_bytes, c.macs
			);
		}
		let tight = Limits { max_step_proof_bytes: info.max_step_proof_bytes, ..Limits::UNLIMITED };
		assert!(validate_lm(&h, &tight).is_ok());
		if block == 256 {
			// Blocked attention: the largest proof no longer grows with the context.
			assert!(info.max_step_proof_bytes < 400_000, "{}", info.max_step_proof_bytes);
		}
	}
}

/// The synthetic step proofs the in-wasm benchmarks time (`pallet_verity_disputes`
/// `lm_step_*`) are real proofs: at SmolLM2-135M's dimensions each is accepted and judged
/// `NoFraud` with the honest hash and `Fraud` with another, and its encoded size stays within
/// validation's bound for the step (12.10).
#[test]
fn synthetic_smollm2_step_proofs_are_judged_and_within_their_bound() {
	for ctx in [512u32, 2048] {
		let h = smollm2_135m_header(ctx, 256);
		let t = ctx - 1;
		for op in [
			LmOp::AttnPart(29, 8, t / 256),
			LmOp::Attn(29, 8),
			LmOp::Select,
			LmOp::Head(191),
			LmOp::Embed,
			LmOp::Down(29, 8),
			LmOp::Q(3, 2),
			LmOp::GateUp(7, 23),
			LmOp::OProj(0, 0),
			LmOp::FinalNorm,
		] {
			for honest in [true, false] {
				let (header, job, roots, proof) =
					synthetic_step_proof(&h, t, op, 9, honest).expect("synthetic proof");
				let want = if honest { Verdict::NoFraud } else { Verdict::Fraud };
				assert_eq!(check_step_proof(&header, &job, &roots, &proof), Ok(want), "{op:?}");
				let bound = step_cost(&h, t, op).unwrap().proof_bytes;
				let size = proof.encoded_size() as u64;
				assert!(size <= bound, "ctx {ctx} {op:?}: {size} B > bound {bound} B");
				if honest {
					println!("ctx {ctx} {op:?}: proof {size} B (bound {bound} B)");
				}
			}
		}
	}
}

/// Any bytes a watcher could send as a step proof against an honest commitment (honest proofs
/// with random byte flips, truncations and insertions): decoding never panics, and nothing
/// that decodes is ever judged `Fraud`.
#[test]
fn mutated_proof_bytes_never_show_fraud_on_an_honest_trace() {
	for seed in 0..4 {
		let case = random_lm_case(seed);
		let (trace, leaves, roots) = honest(&case);
		let trees = ProverTrees::new(&case.chunks, &leaves);
		let steps = all_steps(&case, trace.outputs.len());
		let mut rng = Rng::new(seed ^ 0xf00d);
		for _ in 0..8 {
			let (t, i) = steps[rng.below(steps.len() as u64) as usize];
			let bytes = proof(&case, &trees, &trace, &leaves, t, i).encode();
			for _ in 0..60 {
				let mut b = bytes.clone();
				match rng.below(3) {
					0 => {
						let at = rng.below(b.len() as u64) as usize;
						b[at] ^= 1 << rng.below(8);
					},
					1 => b.truncate(rng.below(b.len() as u64) as usize),
					_ => {
						let at = rng.below(b.len() as u64 + 1) as usize;
						b.insert(at, rng.byte());
					},
				}
				let Ok(p) = decode_canonical::<LmStepProof>(&b, 1 << 24) else { continue };
				let verdict = check_step_proof(&case.header, &case.job, &roots, &p);
				assert_ne!(verdict, Ok(Verdict::Fraud), "seed {seed} ({t}, {i})");
			}
		}
	}
}
