//! The trace of a batch: every step's output split into samples and their step hashes,
//! computed several messages at a time with blake2b_simd's `hash_many` (SIMD across
//! messages), inline after execution or on a hashing thread overlapped with it.
//!
//! The framing of a step hash is `verity_primitives::commit::encode_step_prefix`; the hash is
//! BLAKE2b-256 of `prefix || sample`, which the tests check equals `commit::step_hash`.

use std::{
	sync::{mpsc, Arc, Mutex},
	time::{Duration, Instant},
};

use verity_primitives::{commit::encode_step_prefix, Hash};

use super::SampleTrace;

/// The samples of a batch buffer holding `n` of them back to back.
fn samples(buf: &[u8], n: usize) -> std::slice::ChunksExact<'_, u8> {
	buf.chunks_exact((buf.len() / n.max(1)).max(1))
}

/// The step hashes of every sample of every `(step, batch buffer of n samples)` in `outputs`,
/// step-major (all samples of the first output, then of the next). Each equals
/// `step_hash(step, shapes[step], sample)`.
pub(super) fn step_hashes<'b>(
	shapes: &[Vec<u32>],
	outputs: impl IntoIterator<Item = (u32, &'b [u8])>,
	n: usize,
) -> Vec<Hash> {
	// All messages in one buffer, `prefix || sample` each.
	let mut messages: Vec<u8> = Vec::new();
	let mut ends: Vec<usize> = Vec::new();
	let mut prefix: Vec<u8> = Vec::new();
	for (step, buf) in outputs {
		let shape = shapes.get(step as usize).map(|s| s.as_slice()).unwrap_or(&[]);
		prefix.clear();
		encode_step_prefix(step, shape, &mut prefix);
		let samples = samples(buf, n);
		messages.reserve(samples.len() * prefix.len() + buf.len());
		for sample in samples {
			messages.extend_from_slice(&prefix);
			messages.extend_from_slice(sample);
			ends.push(messages.len());
		}
	}
	let mut start = 0;
	blake2_256_many(ends.iter().map(|&end| {
		let message = messages.get(start..end).unwrap_or(&[]);
		start = end;
		message
	}))
}

/// BLAKE2b-256 of each message, several at a time: eight lanes of AVX-512 where the CPU has
/// it ([`super::blake2b_x8`]), else `blake2b_simd::many::hash_many` (four lanes of AVX2), both
/// fed the longest messages first; equal to `sp_crypto_hashing::blake2_256` of each.
pub fn blake2_256_many<'m>(messages: impl IntoIterator<Item = &'m [u8]>) -> Vec<Hash> {
	let messages: Vec<&[u8]> = messages.into_iter().collect();
	super::blake2b_x8::blake2_256_many_x8(&messages)
		.unwrap_or_else(|| blake2_256_many_x4(&messages))
}

/// The indices of `messages`, longest message first (ties in order): the order both many-lane
/// hashers take them in, so that the lanes stay full until the short ones at the end.
pub(super) fn longest_first(messages: &[&[u8]]) -> Vec<usize> {
	let mut order: Vec<usize> = (0..messages.len()).collect();
	order.sort_by_key(|&i| std::cmp::Reverse(messages.get(i).map_or(0, |m| m.len())));
	order
}

/// BLAKE2b-256 of each message with `blake2b_simd::many::hash_many` (four lanes of AVX2 where
/// the CPU has it), the longest messages first: what [`blake2_256_many`] does without AVX-512.
pub fn blake2_256_many_x4(messages: &[&[u8]]) -> Vec<Hash> {
	let mut params = blake2b_simd::Params::new();
	params.hash_length(32);
	let order = longest_first(messages);
	let mut jobs: Vec<blake2b_simd::many::HashManyJob> = order
		.iter()
		.map(|&i| {
			blake2b_simd::many::HashManyJob::new(&params, messages.get(i).copied().unwrap_or(&[]))
		})
		.collect();
	blake2b_simd::many::hash_many(jobs.iter_mut());
	let mut hashes = vec![[0u8; 32]; messages.len()];
	for (&i, job) in order.iter().zip(&jobs) {
		if let Some(h) = hashes.get_mut(i) {
			h.copy_from_slice(job.to_hash().as_bytes());
		}
	}
	hashes
}

/// Collects the per-sample tensors and step hashes of a batch.
pub(super) struct Hasher {
	/// Declared shape of every tensor (the step hash includes it).
	shapes: Arc<Vec<Vec<u32>>>,
	pub(super) traces: Vec<SampleTrace>,
	/// Time spent in `add` and `hash_all`.
	pub(super) busy: Duration,
	/// Whether `add` hashes (else only `hash_all` does).
	hash: bool,
}

impl Hasher {
	pub(super) fn new(shapes: Arc<Vec<Vec<u32>>>, n: usize, hash: bool) -> Self {
		let cap = shapes.len();
		Hasher {
			shapes,
			traces: (0..n)
				.map(|_| SampleTrace {
					tensors: Vec::with_capacity(cap),
					step_hashes: Vec::with_capacity(cap),
				})
				.collect(),
			busy: Duration::ZERO,
			hash,
		}
	}

	/// Record the output of `step` (the samples back to back), and hash it if `self.hash`.
	pub(super) fn add(&mut self, step: u32, buf: &[u8]) {
		let t0 = Instant::now();
		let n = self.traces.len();
		if self.hash {
			self.push_hashes(step_hashes(&self.shapes, [(step, buf)], n));
		}
		for (t, sample) in self.traces.iter_mut().zip(samples(buf, n)) {
			t.tensors.push(sample.to_vec());
		}
		self.busy += t0.elapsed();
	}

	/// Hash every step output of the batch (in step order) in one `hash_many` call, which
	/// fills the SIMD lanes across samples and steps.
	pub(super) fn hash_all(&mut self, outputs: &[(u32, Arc<Vec<u8>>)]) {
		let t0 = Instant::now();
		let n = self.traces.len();
		let hashes = step_hashes(&self.shapes, outputs.iter().map(|(s, b)| (*s, b.as_slice())), n);
		self.push_hashes(hashes);
		self.busy += t0.elapsed();
	}

	/// Hashes in step-major order, one per sample per step.
	fn push_hashes(&mut self, hashes: Vec<Hash>) {
		let n = self.traces.len().max(1);
		for (k, h) in hashes.into_iter().enumerate() {
			if let Some(t) = self.traces.get_mut(k % n) {
				t.step_hashes.push(h);
			}
		}
	}
}

/// A batch for the hashing thread: the step outputs arrive on `steps`, the traces go back on
/// `done`.
struct HashJob {
	n: usize,
	steps: mpsc::Receiver<(u32, Arc<Vec<u8>>)>,
	done: mpsc::Sender<Hasher>,
}

/// A hashing thread that lives as long as its model (spawning a thread per batch costs more
/// than hashing a small trace).
pub(super) struct HashThread {
	jobs: Mutex<mpsc::Sender<HashJob>>,
}

/// A batch being hashed on the [`HashThread`]: send each step output, then [`Self::finish`].
pub(super) struct Streaming {
	steps: mpsc::Sender<(u32, Arc<Vec<u8>>)>,
	done: mpsc::Receiver<Hasher>,
}

impl HashThread {
	pub(super) fn spawn(shapes: Arc<Vec<Vec<u32>>>) -> Option<Self> {
		let (tx, rx) = mpsc::channel::<HashJob>();
		std::thread::Builder::new()
			.name("verity-hash".into())
			.spawn(move || {
				while let Ok(job) = rx.recv() {
					let mut hasher = Hasher::new(shapes.clone(), job.n, true);
					while let Ok((i, buf)) = job.steps.recv() {
						hasher.add(i, &buf);
					}
					let _ = job.done.send(hasher);
				}
			})
			.ok()?;
		Some(HashThread { jobs: Mutex::new(tx) })
	}

	/// Start a batch of `n` samples; `None` if the thread has stopped.
	pub(super) fn start(&self, n: usize) -> Option<Streaming> {
		let (steps, rx) = mpsc::channel();
		let (done_tx, done) = mpsc::channel();
		self.jobs.lock().ok()?.send(HashJob { n, steps: rx, done: done_tx }).ok()?;
		Some(Streaming { steps, done })
	}
}

impl Streaming {
	/// Hand the output of `step` to the thread; `None` if it has stopped.
	pub(super) fn send(&self, step: u32, buf: &Arc<Vec<u8>>) -> Option<()> {
		self.steps.send((step, buf.clone())).ok()
	}

	/// Wait for the traces of the batch; `None` if the thread has stopped.
	pub(super) fn finish(self) -> Option<Hasher> {
		drop(self.steps);
		self.done.recv().ok()
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::step_hash;

	/// The batched hashes equal `commit::step_hash` for one and several steps, sample counts
	/// and lengths around blake2b's block size (128 bytes).
	#[test]
	fn batched_step_hashes_equal_step_hash() {
		for (len, n) in [(1usize, 1usize), (1, 7), (10, 2), (64, 5), (127, 9), (128, 4), (5000, 33)]
		{
			let buf: Vec<u8> = (0..len * n).map(|i| (i * 31 % 251) as u8).collect();
			let mut shapes = vec![vec![]; 10];
			shapes[9] = vec![len as u32];
			shapes[2] = vec![1, len as u32];
			let want: Vec<Hash> =
				buf.chunks_exact(len).map(|c| step_hash(9, &shapes[9], c)).collect();
			assert_eq!(step_hashes(&shapes, [(9, buf.as_slice())], n), want, "len {len} n {n}");
			// Two steps in one call: step-major.
			let mut want2 = want.clone();
			want2.extend(buf.chunks_exact(len).map(|c| step_hash(2, &shapes[2], c)));
			let got = step_hashes(&shapes, [(9, buf.as_slice()), (2, buf.as_slice())], n);
			assert_eq!(got, want2, "len {len} n {n}");
		}
	}

	/// Both implementations behind `blake2_256_many` (the 8-lane one where the CPU has it, and
	/// `blake2b_simd`'s in any case) equal `blake2_256` in input order, long messages among
	/// short ones.
	#[test]
	fn blake2_256_many_equals_blake2_256() {
		let data: Vec<Vec<u8>> = [0usize, 5, 196_620, 128, 129, 1_036, 0, 2_316, 256, 33, 65]
			.iter()
			.enumerate()
			.map(|(k, &n)| (0..n).map(|i| (i * 7 + k) as u8).collect())
			.collect();
		let want: Vec<Hash> = data.iter().map(|m| sp_crypto_hashing::blake2_256(m)).collect();
		assert_eq!(blake2_256_many(data.iter().map(Vec::as_slice)), want);
		let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
		assert_eq!(blake2_256_many_x4(&messages), want);
	}

	/// `add` per step (the hashing thread) and `hash_all` at the end (inline) give the same
	/// traces.
	#[test]
	fn hasher_add_and_hash_all_agree() {
		let shapes = Arc::new(vec![vec![3u32], vec![2u32]]);
		let outputs: Vec<(u32, Arc<Vec<u8>>)> =
			vec![(0, Arc::new(vec![1, 2, 3, 4, 5, 6])), (1, Arc::new(vec![7, 8, 9, 10]))];
		let mut per_step = Hasher::new(shapes.clone(), 2, true);
		let mut at_end = Hasher::new(shapes.clone(), 2, false);
		for (step, buf) in &outputs {
			per_step.add(*step, buf);
			at_end.add(*step, buf);
		}
		at_end.hash_all(&outputs);
		assert_eq!(per_step.traces, at_end.traces);
		assert_eq!(per_step.traces[1].tensors, vec![vec![4, 5, 6], vec![9, 10]]);
		assert_eq!(per_step.traces[1].step_hashes[1], step_hash(1, &[2], &[9, 10]));
	}
}
