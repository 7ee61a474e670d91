//! Generation requests (the `generate`, `generation`, `generationLeaves` and
//! `proveGeneration` methods): a bounded queue in front of one generation thread (the fast
//! backend, on its own rayon pool), results cached by content, and deadlines, like the
//! classifier service ([`crate::service`]):
//!
//! * a job's key is `blake2_256(b"verity/gen/v1" ‖ model id ‖ SCALE(LmJob))`; the same model
//!   and job always give the same generation, so a second request is answered from the cache
//!   and a request for a job that is queued or running waits for it;
//! * callers never wait past their deadline: they get `Pending` with the key, the job keeps
//!   running, and a later call (or `generation` with the key) gets the result;
//! * the queue is bounded: a new job is refused at once when it is full;
//! * a result keeps every step hash, so an operator can reveal any position
//!   (`generationLeaves`) and a watcher can prove the first wrong step of someone else's
//!   generation from the revealed hashes of its first differing position
//!   ([`crate::verify::judge`]).

use std::{
	collections::{HashMap, VecDeque},
	sync::{Arc, Condvar, Mutex},
	time::{Duration, Instant},
};

use codec::Encode;
use tokio::sync::watch;
use verity_primitives::{
	lm::{interp::LmJob, trace::job_root},
	Hash,
};

use crate::{
	generate::{fast_generate, TextModel},
	lm_fast::{with_threads, FastRun},
	service::Outcome,
	verify::{judge, Outcome as Judgement, VerifyError},
};

/// The key of a generation job.
pub fn generation_key(model: &Hash, job: &LmJob) -> Hash {
	let mut buf = b"verity/gen/v1".to_vec();
	buf.extend_from_slice(model);
	buf.extend_from_slice(&job.encode());
	sp_crypto_hashing::blake2_256(&buf)
}

/// Settings of the generation service.
#[derive(Clone, Debug)]
pub struct GenConfig {
	/// Jobs that may wait (the one running is not counted).
	pub queue_capacity: usize,
	/// Bytes of step hashes kept in the cache (oldest results evicted first).
	pub cache_bytes: usize,
	/// How long a call without a deadline waits before answering "pending".
	pub default_wait: Duration,
	/// Upper bound of any wait.
	pub max_wait: Duration,
	/// Threads of the fast backend (0: one per core).
	pub threads: usize,
}

impl Default for GenConfig {
	fn default() -> Self {
		GenConfig {
			queue_capacity: 64,
			cache_bytes: 512 << 20,
			default_wait: Duration::from_secs(10),
			max_wait: Duration::from_secs(60),
			threads: 0,
		}
	}
}

/// A finished generation.
#[derive(Debug)]
pub struct GenResult {
	pub key: Hash,
	pub model: Hash,
	pub job: LmJob,
	pub run: FastRun,
	pub job_root: Hash,
	pub queue: Duration,
	pub generate: Duration,
}

impl GenResult {
	fn bytes(&self) -> usize {
		32 * self.run.step_hashes.iter().map(Vec::len).sum::<usize>() + 1024
	}
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
	#[error("no language model 0x{} is served", hex::encode(.0))]
	UnknownModel(Hash),
	#[error("the job does not fit the model: {0}")]
	BadJob(String),
	#[error("the generation queue is full ({capacity} jobs); retry later")]
	QueueFull { capacity: usize },
	#[error("no such generation 0x{} (never submitted, failed, or evicted)", hex::encode(.0))]
	UnknownJob(Hash),
	#[error("the generation has {positions} positions; there is no position {position}")]
	NoSuchPosition { position: u32, positions: u32 },
	#[error("{0}")]
	Reveal(String),
	#[error("the generation failed: {0}")]
	Execution(String),
}

type Slot = Option<Result<Arc<GenResult>, String>>;

struct State {
	queue: VecDeque<(Hash, Hash, LmJob, Instant)>,
	pending: HashMap<Hash, watch::Receiver<Slot>>,
	senders: HashMap<Hash, watch::Sender<Slot>>,
	done: HashMap<Hash, Arc<GenResult>>,
	order: VecDeque<Hash>,
	bytes: usize,
	shutdown: bool,
}

struct Inner {
	models: HashMap<Hash, Arc<TextModel>>,
	config: GenConfig,
	state: Mutex<State>,
	work: Condvar,
}

struct Handle(Arc<Inner>);

impl Drop for Handle {
	fn drop(&mut self) {
		if let Ok(mut s) = self.0.state.lock() {
			s.shutdown = true;
		}
		self.0.work.notify_all();
	}
}

/// The generation service (cheap to clone).
#[derive(Clone)]
pub struct GenService(Arc<Handle>);

impl GenService {
	/// Start the generation thread over `models`.
	pub fn start(models: Vec<TextModel>, config: GenConfig) -> GenService {
		let models = models.into_iter().map(|m| (m.file.id(), Arc::new(m))).collect();
		let inner = Arc::new(Inner {
			models,
			config,
			state: Mutex::new(State {
				queue: VecDeque::new(),
				pending: HashMap::new(),
				senders: HashMap::new(),
				done: HashMap::new(),
				order: VecDeque::new(),
				bytes: 0,
				shutdown: false,
			}),
			work: Condvar::new(),
		});
		let worker = inner.clone();
		std::thread::Builder::new()
			.name("verity-generate".into())
			.spawn(move || run_queue(&worker))
			.expect("spawning the generation thread");
		GenService(Arc::new(Handle(inner)))
	}

	fn inner(&self) -> &Inner {
		&self.0 .0
	}

	/// The served language models.
	pub fn models(&self) -> Vec<Arc<TextModel>> {
		let mut v: Vec<_> = self.inner().models.values().cloned().collect();
		v.sort_by_key(|m| m.file.id());
		v
	}

	/// The served language model `id`.
	pub fn model(&self, id: &Hash) -> Result<Arc<TextModel>, GenError> {
		self.inner().models.get(id).cloned().ok_or(GenError::UnknownModel(*id))
	}

	fn wait_time(&self, wait: Option<Duration>) -> Duration {
		let c = &self.inner().config;
		wait.unwrap_or(c.default_wait).min(c.max_wait)
	}

	/// Generate `job` with model `model`; waits at most `wait`.
	pub async fn generate(
		&self,
		model: &Hash,
		job: LmJob,
		wait: Option<Duration>,
	) -> Result<Outcome<Arc<GenResult>>, GenError> {
		let m = self.model(model)?;
		job.check(&m.file.header).map_err(|e| GenError::BadJob(format!("{e:?}")))?;
		let key = generation_key(model, &job);
		let rx = {
			let inner = self.inner();
			let mut s = inner.state.lock().map_err(|_| GenError::Execution("poisoned".into()))?;
			if let Some(r) = s.done.get(&key) {
				return Ok(Outcome::Done(r.clone()));
			}
			match s.pending.get(&key) {
				Some(rx) => rx.clone(),
				None => {
					if s.queue.len() >= inner.config.queue_capacity {
						return Err(GenError::QueueFull { capacity: inner.config.queue_capacity });
					}
					let (tx, rx) = watch::channel(None);
					s.queue.push_back((key, *model, job, Instant::now()));
					s.pending.insert(key, rx.clone());
					s.senders.insert(key, tx);
					inner.work.notify_one();
					rx
				},
			}
		};
		self.wait_for(key, rx, wait).await
	}

	/// The result of generation `key`; waits at most `wait` while it is pending.
	pub async fn generation(
		&self,
		key: &Hash,
		wait: Option<Duration>,
	) -> Result<Outcome<Arc<GenResult>>, GenError> {
		let rx = {
			let s =
				self.inner().state.lock().map_err(|_| GenError::Execution("poisoned".into()))?;
			if let Some(r) = s.done.get(key) {
				return Ok(Outcome::Done(r.clone()));
			}
			s.pending.get(key).cloned().ok_or(GenError::UnknownJob(*key))?
		};
		self.wait_for(*key, rx, wait).await
	}

	async fn wait_for(
		&self,
		key: Hash,
		mut rx: watch::Receiver<Slot>,
		wait: Option<Duration>,
	) -> Result<Outcome<Arc<GenResult>>, GenError> {
		let waited = tokio::time::timeout(self.wait_time(wait), rx.wait_for(Option::is_some)).await;
		match waited {
			Ok(Ok(slot)) => match slot.clone() {
				Some(Ok(r)) => Ok(Outcome::Done(r)),
				Some(Err(e)) => Err(GenError::Execution(e)),
				None => Ok(Outcome::Pending(key)),
			},
			_ => Ok(Outcome::Pending(key)),
		}
	}

	/// The step hashes of `position` of the finished generation `key`.
	pub fn leaves(&self, key: &Hash, position: u32) -> Result<Vec<Hash>, GenError> {
		let s = self.inner().state.lock().map_err(|_| GenError::Execution("poisoned".into()))?;
		let r = s.done.get(key).ok_or(GenError::UnknownJob(*key))?;
		r.run
			.step_hashes
			.get(position as usize)
			.cloned()
			.ok_or(GenError::NoSuchPosition { position, positions: r.run.positions })
	}

	/// Judge someone's position roots (and the revealed step hashes of their first differing
	/// position) against the honest generation, which runs (or is taken from the cache) first;
	/// waits at most `wait` for it.
	pub async fn prove(
		&self,
		model: &Hash,
		job: LmJob,
		roots: Vec<Hash>,
		reveal: Option<(u32, Vec<Hash>)>,
		wait: Option<Duration>,
	) -> Result<Outcome<Judgement>, GenError> {
		let m = self.model(model)?;
		let honest = match self.generate(model, job.clone(), wait).await? {
			Outcome::Pending(key) => return Ok(Outcome::Pending(key)),
			Outcome::Done(r) => r,
		};
		let threads = self.inner().config.threads;
		let judged = tokio::task::spawn_blocking(move || {
			let reveal = reveal.as_ref().map(|(p, l)| (*p, l.as_slice()));
			judge(&m, &job, &honest.run, &roots, None, reveal, threads)
		})
		.await
		.map_err(|e| GenError::Execution(e.to_string()))?;
		match judged {
			Ok(j) => Ok(Outcome::Done(j)),
			Err(
				e @ (VerifyError::RevealMismatch { .. } | VerifyError::RevealWrongPosition { .. }),
			) => Err(GenError::Reveal(e.to_string())),
			Err(e) => Err(GenError::Execution(e.to_string())),
		}
	}

	/// Jobs waiting in the queue.
	pub fn queue_len(&self) -> usize {
		self.inner().state.lock().map(|s| s.queue.len()).unwrap_or(0)
	}
}

/// The generation thread: one job at a time, oldest first.
fn run_queue(inner: &Inner) {
	loop {
		let (key, model, job, enqueued) = {
			let Ok(mut s) = inner.state.lock() else { return };
			loop {
				if s.shutdown {
					return;
				}
				if let Some(next) = s.queue.pop_front() {
					break next;
				}
				s = match inner.work.wait(s) {
					Ok(s) => s,
					Err(_) => return,
				};
			}
		};
		let started = Instant::now();
		let result = inner
			.models
			.get(&model)
			.ok_or_else(|| "model not served".to_string())
			.and_then(|m| {
				let fast = m.fast().map_err(|e| e.to_string())?;
				with_threads(inner.config.threads, || fast_generate(m, fast, &job))
					.map_err(|e| format!("{e:?}"))
			})
			.map(|run| {
				Arc::new(GenResult {
					key,
					model,
					job_root: job_root(&run.position_roots),
					job,
					run,
					queue: started - enqueued,
					generate: started.elapsed(),
				})
			});
		let Ok(mut s) = inner.state.lock() else { return };
		s.pending.remove(&key);
		let tx = s.senders.remove(&key);
		if let Ok(r) = &result {
			s.bytes += r.bytes();
			s.done.insert(key, r.clone());
			s.order.push_back(key);
			while s.bytes > inner.config.cache_bytes && s.order.len() > 1 {
				if let Some(old) = s.order.pop_front() {
					if let Some(r) = s.done.remove(&old) {
						s.bytes = s.bytes.saturating_sub(r.bytes());
					}
				}
			}
		}
		drop(s);
		if let Some(tx) = tx {
			tx.send_replace(Some(result));
		}
	}
}
