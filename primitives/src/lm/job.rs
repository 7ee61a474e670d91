//! The rules a chain checks of a generation job without running the model: the request, the
//! committed output tokens (counts and stop condition), and an operator's reveal of one
//! position's step hashes (its root and, where the position samples, the `Select` leaf bound to
//! the committed token). One home for each rule: the jobs and disputes pallets and the worker
//! call these.
//!
//! A generation with a prompt of `P` tokens that produced `n` tokens has `P + n - 1` positions
//! (the last token is never fed back), so its job root is over `P + n - 1` position roots.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::{
	graph::{op_index, ops_at, LmOp, Shape},
	header::LmHeader,
	trace::{job_root, lm_step_hash, position_root},
};
use crate::model::Hash;

/// What a chain keeps of a text model to check requests and outputs without its header.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct TextLimits {
	/// Vocabulary size: every token id is below it.
	pub vocab: u32,
	/// Largest number of positions of a generation.
	pub max_context: u32,
	/// Tokens that end a generation.
	pub eos_tokens: Vec<u32>,
}

impl TextLimits {
	/// The limits of a header.
	pub fn of(h: &LmHeader) -> TextLimits {
		TextLimits { vocab: h.vocab, max_context: h.max_context, eos_tokens: h.eos_tokens.clone() }
	}
}

/// Why a generation request is refused.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
pub enum RequestError {
	/// The prompt has no token.
	EmptyPrompt,
	/// `max_new_tokens` is zero.
	NoNewTokens,
	/// A prompt token is not below the vocabulary size.
	TokenOutOfVocab,
	/// `prompt + max_new_tokens - 1` positions exceed the model's context.
	ContextExceeded,
}

/// Why committed output tokens are refused.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
pub enum OutputError {
	/// No token, or more than `max_new_tokens`.
	WrongTokenCount,
	/// A token is not below the vocabulary size.
	TokenOutOfVocab,
	/// An end-of-sequence token before the last token.
	EarlyStop,
	/// Fewer than `max_new_tokens` tokens, and the last is not an end-of-sequence token.
	NotStopped,
}

/// Why an operator's reveal of a position is refused.
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
pub enum RevealError {
	/// The position is not a position of the generation.
	NoSuchPosition,
	/// The number of step hashes is not the position's op count.
	WrongLeafCount,
	/// The step hashes do not hash to the committed position root.
	RootMismatch,
	/// The position selects a token and its `Select` step hash is not the hash of the
	/// committed token.
	TokenMismatch,
}

/// Number of positions of a generation with `prompt_len` prompt tokens and `tokens` generated
/// tokens: `prompt_len + tokens - 1` (saturating; 0 without tokens).
pub fn positions(prompt_len: u32, tokens: u32) -> u32 {
	if tokens == 0 {
		return 0;
	}
	prompt_len.saturating_add(tokens).saturating_sub(1)
}

/// A request the model can serve: a non-empty prompt of tokens below the vocabulary, at least
/// one new token, and `prompt + max_new_tokens - 1 <= max_context` positions (so that a
/// generation never stops for want of room).
pub fn check_request(
	limits: &TextLimits,
	prompt: &[u32],
	max_new_tokens: u32,
) -> Result<(), RequestError> {
	if prompt.is_empty() {
		return Err(RequestError::EmptyPrompt);
	}
	if max_new_tokens == 0 {
		return Err(RequestError::NoNewTokens);
	}
	if prompt.iter().any(|&t| t >= limits.vocab) {
		return Err(RequestError::TokenOutOfVocab);
	}
	let needed = (prompt.len() as u64).saturating_add(u64::from(max_new_tokens)).saturating_sub(1);
	if needed > u64::from(limits.max_context) {
		return Err(RequestError::ContextExceeded);
	}
	Ok(())
}

/// Output tokens that end as the interpreter ends a generation ([`super::interp::generate`]):
/// `1..=max_new_tokens` tokens below the vocabulary, no end-of-sequence token before the last,
/// and, when fewer than `max_new_tokens`, an end-of-sequence token last.
pub fn check_output(
	limits: &TextLimits,
	max_new_tokens: u32,
	tokens: &[u32],
) -> Result<(), OutputError> {
	let Some((last, before)) = tokens.split_last() else {
		return Err(OutputError::WrongTokenCount);
	};
	if tokens.len() as u64 > u64::from(max_new_tokens) {
		return Err(OutputError::WrongTokenCount);
	}
	if tokens.iter().any(|&t| t >= limits.vocab) {
		return Err(OutputError::TokenOutOfVocab);
	}
	let eos = |t: &u32| limits.eos_tokens.contains(t);
	if before.iter().any(eos) {
		return Err(OutputError::EarlyStop);
	}
	if (tokens.len() as u64) < u64::from(max_new_tokens) && !eos(last) {
		return Err(OutputError::NotStopped);
	}
	Ok(())
}

/// Position roots that open a committed job root: `positions(prompt_len, tokens)` of them and
/// [`job_root`] equal to `root`.
pub fn roots_open(root: &Hash, prompt_len: u32, tokens: u32, roots: &[Hash]) -> bool {
	roots.len() as u64 == u64::from(positions(prompt_len, tokens)) && job_root(roots) == *root
}

/// The position a watcher names in a dispute: the first whose committed root differs from the
/// honest generation's, else the position that selected the first differing token (`prompt -
/// 1 + k`), else the first position one list has and the other has not; `None` if the
/// commitment (roots and tokens) is the honest one. Only positions of the commitment
/// (`< committed roots`) are returned.
pub fn first_difference(
	prompt_len: u32,
	committed: (&[Hash], &[u32]),
	honest: (&[Hash], &[u32]),
) -> Option<u32> {
	let (roots, tokens) = committed;
	let n = roots.len();
	let at = |i: usize| u32::try_from(i).ok().filter(|_| i < n);
	if let Some(i) = roots.iter().zip(honest.0).position(|(a, b)| a != b) {
		return at(i);
	}
	if let Some(k) = tokens.iter().zip(honest.1).position(|(a, b)| a != b) {
		return at((prompt_len as usize).saturating_sub(1).saturating_add(k));
	}
	if roots.len() != honest.0.len() || tokens.len() != honest.1.len() {
		return at(n.min(honest.0.len())).or_else(|| n.checked_sub(1).and_then(at));
	}
	None
}

/// An operator's step hashes of `position`: one per op of the position's shape, hashing to
/// `roots[position]`, and, at a position that selects a token, the `Select` step hash equal to
/// `lm_step_hash(token)` (its four little-endian bytes) of the committed token
/// `tokens[position + 1 - prompt_len]`.
pub fn check_reveal(
	h: &LmHeader,
	prompt_len: u32,
	tokens: &[u32],
	roots: &[Hash],
	position: u32,
	leaves: &[Hash],
) -> Result<(), RevealError> {
	let root = usize::try_from(position)
		.ok()
		.and_then(|p| roots.get(p))
		.ok_or(RevealError::NoSuchPosition)?;
	let shape = Shape::at(h, prompt_len, position);
	if leaves.len() as u64 != ops_at(h, shape) {
		return Err(RevealError::WrongLeafCount);
	}
	if position_root(leaves) != *root {
		return Err(RevealError::RootMismatch);
	}
	if shape.samples {
		let k = position.saturating_add(1).saturating_sub(prompt_len);
		let token = usize::try_from(k).ok().and_then(|k| tokens.get(k));
		let select = op_index(h, shape, LmOp::Select);
		let leaf = select.and_then(|i| leaves.get(usize::try_from(i).ok()?));
		let bound = match (token, leaf) {
			(Some(t), Some(l)) => lm_step_hash(&t.to_le_bytes()) == *l,
			_ => false,
		};
		if !bound {
			return Err(RevealError::TokenMismatch);
		}
	}
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;

	fn limits() -> TextLimits {
		TextLimits { vocab: 40, max_context: 16, eos_tokens: alloc::vec![1, 2] }
	}

	#[test]
	fn requests() {
		let l = limits();
		assert_eq!(check_request(&l, &[], 1), Err(RequestError::EmptyPrompt));
		assert_eq!(check_request(&l, &[3], 0), Err(RequestError::NoNewTokens));
		assert_eq!(check_request(&l, &[3, 40], 1), Err(RequestError::TokenOutOfVocab));
		assert_eq!(check_request(&l, &[3; 16], 1), Ok(()));
		assert_eq!(check_request(&l, &[3; 16], 2), Err(RequestError::ContextExceeded));
		assert_eq!(check_request(&l, &[3; 10], 7), Ok(()));
		assert_eq!(check_request(&l, &[3; 10], 8), Err(RequestError::ContextExceeded));
		assert_eq!(check_request(&l, &[3], u32::MAX), Err(RequestError::ContextExceeded));
	}

	#[test]
	fn first_differences() {
		let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
		// Equal: nothing.
		assert_eq!(first_difference(2, (&[a, b], &[5]), (&[a, b], &[5])), None);
		// The first differing root.
		assert_eq!(first_difference(2, (&[a, c, c], &[5, 6]), (&[a, b, c], &[5, 6])), Some(1));
		// Equal roots, a different token: the position that selected it.
		assert_eq!(first_difference(2, (&[a, b, c], &[5, 7]), (&[a, b, c], &[5, 6])), Some(2));
		// A longer commitment: the first position the honest one lacks.
		assert_eq!(first_difference(2, (&[a, b, c], &[5, 6]), (&[a, b], &[5])), Some(2));
		// A shorter one: its last position (the honest generation goes on).
		assert_eq!(first_difference(2, (&[a, b], &[5]), (&[a, b, c], &[5, 6])), Some(1));
	}

	#[test]
	fn outputs() {
		let l = limits();
		assert_eq!(check_output(&l, 4, &[]), Err(OutputError::WrongTokenCount));
		assert_eq!(check_output(&l, 2, &[5, 6, 7]), Err(OutputError::WrongTokenCount));
		assert_eq!(check_output(&l, 3, &[5, 6, 7]), Ok(()));
		assert_eq!(check_output(&l, 3, &[5, 40, 7]), Err(OutputError::TokenOutOfVocab));
		assert_eq!(check_output(&l, 3, &[5, 1, 7]), Err(OutputError::EarlyStop));
		assert_eq!(check_output(&l, 3, &[5, 2]), Ok(()));
		assert_eq!(check_output(&l, 3, &[5, 6]), Err(OutputError::NotStopped));
		assert_eq!(check_output(&l, 3, &[1]), Ok(()));
		assert_eq!(check_output(&l, 3, &[5, 6, 2]), Ok(()));
		assert_eq!(positions(4, 3), 6);
		assert_eq!(positions(4, 0), 0);
	}

	/// The interpreter's own generations pass `check_output`, their roots open their job root,
	/// and every position's reveal passes; a changed token, leaf or count is refused.
	#[cfg(feature = "testing")]
	#[test]
	fn reveals_of_real_generations() {
		let mut checked = 0;
		for seed in 0..40 {
			let case = crate::testing::lm::random_lm_case(seed);
			let h = &case.header;
			// The chain admits only requests that fit the context.
			let mut job = case.job.clone();
			let room = h.max_context.saturating_add(1).saturating_sub(job.prompt_len());
			job.max_new_tokens = job.max_new_tokens.min(room);
			let job = &job;
			let Ok(trace) = crate::lm::interp::generate(h, &case.chunks, job) else { continue };
			let l = TextLimits::of(h);
			let p_len = job.prompt_len();
			assert_eq!(check_request(&l, &job.prompt, job.max_new_tokens), Ok(()));
			assert_eq!(check_output(&l, job.max_new_tokens, &trace.tokens), Ok(()), "seed {seed}");
			let n = crate::len_u32(trace.tokens.len());
			let roots = trace.position_roots();
			assert_eq!(roots.len() as u32, positions(p_len, n));
			let root = job_root(&roots);
			assert!(roots_open(&root, p_len, n, &roots));
			assert!(!roots_open(&root, p_len, n + 1, &roots));
			let hashes = trace.step_hashes();
			for (p, leaves) in hashes.iter().enumerate() {
				let p = crate::len_u32(p);
				assert_eq!(check_reveal(h, p_len, &trace.tokens, &roots, p, leaves), Ok(()));
			}
			let last = crate::len_u32(hashes.len()) - 1;
			let leaves = &hashes[last as usize];
			assert_eq!(
				check_reveal(h, p_len, &trace.tokens, &roots, last + 1, leaves),
				Err(RevealError::NoSuchPosition)
			);
			assert_eq!(
				check_reveal(h, p_len, &trace.tokens, &roots, last, &leaves[1..]),
				Err(RevealError::WrongLeafCount)
			);
			let mut changed = leaves.clone();
			changed[0][0] ^= 1;
			assert_eq!(
				check_reveal(h, p_len, &trace.tokens, &roots, last, &changed),
				Err(RevealError::RootMismatch)
			);
			// An honest trace, but a committed token that is not its Select's output.
			let mut tokens = trace.tokens.clone();
			*tokens.last_mut().unwrap() ^= 1;
			assert_eq!(
				check_reveal(h, p_len, &tokens, &roots, last, leaves),
				Err(RevealError::TokenMismatch)
			);
			if p_len > 1 {
				// A prompt position before the last does not sample: the tokens do not matter.
				assert_eq!(check_reveal(h, p_len, &tokens, &roots, 0, &hashes[0]), Ok(()));
			}
			checked += 1;
		}
		assert!(checked >= 30, "only {checked} generations ran");
	}
}
