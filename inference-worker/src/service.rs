//! The job service: a bounded queue in front of one executor thread that batches requests,
//! a result cache keyed by content, and deadlines.
//!
//! * A job is `(model id, input)`; its key is
//!   `blake2_256(b"verity/job/v1" ‖ model id ‖ input)`. The same model and input always give the
//!   same result, so results are cached by key: a second request is answered from the cache
//!   and a request for a job that is already queued or running waits for that job.
//! * The queue is bounded (`queue_capacity` jobs waiting, plus the batch being executed): when
//!   it is full a new job is refused at once with [`ServiceError::QueueFull`] (back-pressure;
//!   the caller retries later). Nothing is ever refused because of a cached or pending key.
//! * Callers never wait past their deadline: [`Service::execute`] waits at most `wait` for the
//!   result and otherwise returns [`Outcome::Pending`] with the job key; the job keeps running
//!   and a later call with the same arguments (or [`Service::job`] with the key) gets the
//!   cached result.
//! * The executor takes the oldest job and up to `max_batch - 1` more queued jobs of the same
//!   model and runs them as one batch (the exact backend gives the same bytes at any batch size).

use std::{
	collections::{HashMap, VecDeque},
	sync::{Arc, Condvar, Mutex, RwLock},
	thread,
	time::{Duration, Instant},
};

use tch::Device;
use tokio::sync::{mpsc, watch};
use verity_primitives::{
	build_fraud_proof, check_fraud_proof, first_mismatch, trace_root, FraudProof, Hash, ModelId,
	Trace, Verdict,
};

use crate::{
	backend::{BackendKind, Executor},
	model::LoadedModel,
};

/// The key of a job: `blake2_256(b"verity/job/v1" ‖ model id ‖ input)`.
pub fn job_key(model: &ModelId, input: &[u8]) -> Hash {
	let mut buf = Vec::with_capacity(13 + 32 + input.len());
	buf.extend_from_slice(b"verity/job/v1");
	buf.extend_from_slice(model);
	buf.extend_from_slice(input);
	sp_blake2_256(&buf)
}

fn sp_blake2_256(data: &[u8]) -> Hash {
	// The weight hash of verity-primitives is plain blake2-256.
	verity_primitives::model::weight_hash(data)
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
	pub backend: BackendKind,
	pub device: Device,
	/// Jobs that may wait in the queue (the batch being executed is not counted).
	pub queue_capacity: usize,
	/// Largest batch the executor forms from queued jobs of one model.
	pub max_batch: usize,
	/// Finished results kept in the cache (oldest evicted first).
	pub cache_entries: usize,
	/// Bytes of traces kept in the cache (oldest evicted first).
	pub cache_bytes: usize,
	/// How long a call without a deadline waits before answering "pending".
	pub default_wait: Duration,
	/// Upper bound of any wait.
	pub max_wait: Duration,
	/// A model store to look in when a request names a model that is not loaded: a model
	/// added to the store while the worker runs is loaded (verified) on first use.
	pub store: Option<crate::store::ModelStore>,
}

impl Default for ServiceConfig {
	fn default() -> Self {
		ServiceConfig {
			backend: BackendKind::Tch,
			device: Device::Cpu,
			queue_capacity: 256,
			max_batch: 32,
			cache_entries: 4096,
			cache_bytes: 256 << 20,
			default_wait: Duration::from_secs(10),
			max_wait: Duration::from_secs(60),
			store: None,
		}
	}
}

/// Time spent on a job, in milliseconds (the `timings` of an `execute` answer).
pub use verity_worker_api::Timings;

/// The result of a job.
#[derive(Debug)]
pub struct JobResult {
	pub key: Hash,
	pub model: ModelId,
	pub input: Vec<u8>,
	/// Every tensor of the trace (`tensors[0]` = input, last = output).
	pub tensors: Vec<Vec<u8>>,
	pub step_hashes: Vec<Hash>,
	pub trace_root: Hash,
	pub timings: Timings,
	pub backend: BackendKind,
}

impl JobResult {
	pub fn output(&self) -> &[u8] {
		self.tensors.last().map(|t| t.as_slice()).unwrap_or(&[])
	}

	fn bytes(&self) -> usize {
		self.tensors.iter().map(|t| t.len()).sum::<usize>() + 32 * self.step_hashes.len()
	}
}

/// What a call gets: the result, or the key of a job still queued or running.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
	Done(T),
	Pending(Hash),
}

/// The answer of [`Service::prove`].
#[derive(Debug, Clone)]
pub enum ProveResult {
	/// Every committed hash equals the honest one.
	Consistent { trace_root: Hash },
	/// `step` is the first wrong step; `proof` is accepted by `check_fraud_proof` as
	/// `verdict` (always `Fraud`: the worker checks its own proof before answering).
	Fraud { step: u32, proof: FraudProof, verdict: Verdict },
}

/// Errors of the service, each with its JSON-RPC code (see `rpc`).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ServiceError {
	#[error("unknown model {0}")]
	UnknownModel(String),
	#[error("wrong input size: the model takes {expected} bytes, got {got}")]
	WrongInputSize { expected: usize, got: usize },
	#[error("queue full ({capacity} jobs waiting): retry later")]
	QueueFull { capacity: usize },
	#[error("wrong number of committed step hashes: the model has {expected}, got {got}")]
	WrongHashCount { expected: usize, got: usize },
	#[error("the committed h_0 is not the hash of this input")]
	InputMismatch,
	#[error("unknown job {0}")]
	UnknownJob(String),
	#[error("execution failed: {0}")]
	Execution(String),
	#[error("the worker is shutting down")]
	ShuttingDown,
}

type Shared = Arc<Result<Arc<JobResult>, ServiceError>>;

enum Entry {
	Pending(watch::Receiver<Option<Shared>>),
	Done(Arc<JobResult>),
}

#[derive(Default)]
struct Cache {
	entries: HashMap<Hash, Entry>,
	/// Finished keys, oldest first.
	order: VecDeque<Hash>,
	bytes: usize,
}

struct Job {
	key: Hash,
	model: Arc<LoadedModel>,
	input: Vec<u8>,
	submitted: Instant,
	done: watch::Sender<Option<Shared>>,
}

/// Pauses the executor (tests use it to fill the queue deterministically).
#[derive(Default)]
struct Gate {
	paused: Mutex<bool>,
	cv: Condvar,
}

impl Gate {
	fn wait(&self) {
		let mut p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
		while *p {
			p = self.cv.wait(p).unwrap_or_else(|e| e.into_inner());
		}
	}

	fn set(&self, paused: bool) {
		*self.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
		self.cv.notify_all();
	}
}

/// Counters for `health`.
pub use verity_worker_api::Stats;

struct Inner {
	config: ServiceConfig,
	models: RwLock<HashMap<ModelId, Arc<LoadedModel>>>,
	cache: Mutex<Cache>,
	queue: mpsc::Sender<Job>,
	gate: Gate,
	stats: Mutex<Stats>,
	started: Instant,
}

/// The job service. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Service {
	inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
	m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Service {
	/// Start the service and its executor thread with `models`.
	pub fn start(config: ServiceConfig, models: Vec<LoadedModel>) -> Self {
		let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
		let models = models.into_iter().map(|m| (m.id, Arc::new(m))).collect();
		let inner = Arc::new(Inner {
			config,
			models: RwLock::new(models),
			cache: Mutex::new(Cache::default()),
			queue: tx,
			gate: Gate::default(),
			stats: Mutex::new(Stats::default()),
			started: Instant::now(),
		});
		let worker = Arc::downgrade(&inner);
		let (kind, device, max_batch) =
			(inner.config.backend, inner.config.device, inner.config.max_batch.max(1));
		let spawned = thread::Builder::new()
			.name("verity-executor".into())
			.spawn(move || executor_loop(rx, worker, Executor::new(kind, device), max_batch));
		if let Err(e) = spawned {
			eprintln!("verity-worker: cannot start the executor thread: {e}");
		}
		Service { inner }
	}

	pub fn config(&self) -> &ServiceConfig {
		&self.inner.config
	}

	pub fn uptime(&self) -> Duration {
		self.inner.started.elapsed()
	}

	pub fn stats(&self) -> Stats {
		*lock(&self.inner.stats)
	}

	/// Jobs waiting in the queue.
	pub fn queue_len(&self) -> usize {
		self.inner.queue.max_capacity() - self.inner.queue.capacity()
	}

	/// Pause or resume the executor (a job already taken is held until resumed).
	pub fn set_paused(&self, paused: bool) {
		self.inner.gate.set(paused);
	}

	/// Add (or replace) a model.
	pub fn add_model(&self, model: LoadedModel) {
		let mut models = self.inner.models.write().unwrap_or_else(|e| e.into_inner());
		models.insert(model.id, Arc::new(model));
	}

	/// The served models, sorted by id.
	pub fn models(&self) -> Vec<Arc<LoadedModel>> {
		let models = self.inner.models.read().unwrap_or_else(|e| e.into_inner());
		let mut v: Vec<_> = models.values().cloned().collect();
		v.sort_by_key(|m| m.id);
		v
	}

	/// A served model; one that is not loaded yet is looked up in the store (if any), verified
	/// against its id and loaded.
	pub fn model(&self, id: &ModelId) -> Result<Arc<LoadedModel>, ServiceError> {
		{
			let models = self.inner.models.read().unwrap_or_else(|e| e.into_inner());
			if let Some(m) = models.get(id) {
				return Ok(m.clone());
			}
		}
		let unknown = || ServiceError::UnknownModel(verity_worker_api::hex::encode(id));
		let store = self.inner.config.store.as_ref().ok_or_else(unknown)?;
		if !store.path_of(id).exists() {
			return Err(unknown());
		}
		match store.load(id) {
			Ok(m) => {
				let m = Arc::new(m);
				let mut models = self.inner.models.write().unwrap_or_else(|e| e.into_inner());
				models.insert(*id, m.clone());
				Ok(m)
			},
			Err(e) => {
				eprintln!("verity-worker: refused: {e}");
				Err(unknown())
			},
		}
	}

	fn wait_for(&self, requested: Option<Duration>) -> Duration {
		requested.unwrap_or(self.inner.config.default_wait).min(self.inner.config.max_wait)
	}

	/// Execute `input` on model `id`, waiting at most `wait` (default: the configured
	/// `default_wait`) for the result.
	pub async fn execute(
		&self,
		id: &ModelId,
		input: Vec<u8>,
		wait: Option<Duration>,
	) -> Result<Outcome<Arc<JobResult>>, ServiceError> {
		let model = self.model(id)?;
		if input.len() != model.input_len() {
			return Err(ServiceError::WrongInputSize {
				expected: model.input_len(),
				got: input.len(),
			});
		}
		let key = job_key(id, &input);
		let rx = {
			let mut cache = lock(&self.inner.cache);
			match cache.entries.get(&key) {
				Some(Entry::Done(r)) => {
					lock(&self.inner.stats).cache_hits += 1;
					return Ok(Outcome::Done(r.clone()));
				},
				Some(Entry::Pending(rx)) => rx.clone(),
				None => {
					let (tx, rx) = watch::channel(None);
					let job = Job { key, model, input, submitted: Instant::now(), done: tx };
					match self.inner.queue.try_send(job) {
						Ok(()) => {},
						Err(mpsc::error::TrySendError::Full(_)) => {
							lock(&self.inner.stats).rejected_queue_full += 1;
							return Err(ServiceError::QueueFull {
								capacity: self.inner.config.queue_capacity,
							});
						},
						Err(mpsc::error::TrySendError::Closed(_)) => {
							return Err(ServiceError::ShuttingDown)
						},
					}
					cache.entries.insert(key, Entry::Pending(rx.clone()));
					rx
				},
			}
		};
		self.await_job(key, rx, self.wait_for(wait)).await
	}

	async fn await_job(
		&self,
		key: Hash,
		mut rx: watch::Receiver<Option<Shared>>,
		wait: Duration,
	) -> Result<Outcome<Arc<JobResult>>, ServiceError> {
		let waited = tokio::time::timeout(wait, rx.wait_for(|v| v.is_some())).await;
		match waited {
			Err(_) => Ok(Outcome::Pending(key)),
			Ok(Err(_)) => Err(ServiceError::ShuttingDown),
			Ok(Ok(v)) => match v.as_ref().map(|s| s.as_ref()) {
				Some(Ok(r)) => Ok(Outcome::Done(r.clone())),
				Some(Err(e)) => Err(e.clone()),
				None => Ok(Outcome::Pending(key)),
			},
		}
	}

	/// The state of a job by key: its result, still pending (waiting at most `wait`), or
	/// unknown (never submitted, failed, or evicted from the cache).
	pub async fn job(
		&self,
		key: &Hash,
		wait: Option<Duration>,
	) -> Result<Outcome<Arc<JobResult>>, ServiceError> {
		let rx = {
			let cache = lock(&self.inner.cache);
			match cache.entries.get(key) {
				Some(Entry::Done(r)) => return Ok(Outcome::Done(r.clone())),
				Some(Entry::Pending(rx)) => rx.clone(),
				None => return Err(ServiceError::UnknownJob(verity_worker_api::hex::encode(key))),
			}
		};
		self.await_job(*key, rx, self.wait_for(wait)).await
	}

	/// Compare an operator's committed step hashes with an honest execution: "consistent", or
	/// the first wrong step and its fraud proof (checked with `check_fraud_proof` before it is
	/// returned).
	pub async fn prove(
		&self,
		id: &ModelId,
		input: Vec<u8>,
		committed: Vec<Hash>,
		wait: Option<Duration>,
	) -> Result<Outcome<ProveResult>, ServiceError> {
		let model = self.model(id)?;
		let expected = model.header.ops.len() + 1;
		if committed.len() != expected {
			return Err(ServiceError::WrongHashCount { expected, got: committed.len() });
		}
		let result = match self.execute(id, input, wait).await? {
			Outcome::Done(r) => r,
			Outcome::Pending(k) => return Ok(Outcome::Pending(k)),
		};
		prove_against(&model, &result, &committed).map(Outcome::Done)
	}
}

/// The fraud-proof decision for one executed job (pure; used by [`Service::prove`]).
pub fn prove_against(
	model: &LoadedModel,
	result: &JobResult,
	committed: &[Hash],
) -> Result<ProveResult, ServiceError> {
	match first_mismatch(&result.step_hashes, committed) {
		None => Ok(ProveResult::Consistent { trace_root: result.trace_root }),
		Some(0) => Err(ServiceError::InputMismatch),
		Some(step) => {
			let trace = Trace { tensors: result.tensors.clone() };
			let proof = build_fraud_proof(&model.header, &trace, &model.weights, step)
				.ok_or_else(|| ServiceError::Execution(format!("no proof for step {step}")))?;
			let verdict = check_fraud_proof(&model.header, committed, &proof)
				.map_err(|e| ServiceError::Execution(format!("own proof rejected: {e:?}")))?;
			Ok(ProveResult::Fraud { step, proof, verdict })
		},
	}
}

fn executor_loop(
	mut rx: mpsc::Receiver<Job>,
	service: std::sync::Weak<Inner>,
	mut executor: Executor,
	max_batch: usize,
) {
	let mut carry: Option<Job> = None;
	loop {
		let first = match carry.take() {
			Some(j) => j,
			None => match rx.blocking_recv() {
				Some(j) => j,
				None => return,
			},
		};
		let Some(inner) = service.upgrade() else { return };
		inner.gate.wait();
		let mut batch = vec![first];
		while batch.len() < max_batch {
			match rx.try_recv() {
				Ok(j) if j.model.id == batch[0].model.id => batch.push(j),
				Ok(j) => {
					carry = Some(j);
					break;
				},
				Err(_) => break,
			}
		}
		let model = batch[0].model.clone();
		let started = Instant::now();
		let inputs: Vec<&[u8]> = batch.iter().map(|j| j.input.as_slice()).collect();
		let ran = executor.run(&model, &inputs);
		let n = batch.len();
		{
			let mut stats = lock(&inner.stats);
			stats.batches += 1;
			stats.jobs_executed += n as u64;
		}
		match ran {
			Ok((traces, t)) => {
				for (job, trace) in batch.into_iter().zip(traces) {
					let root = trace_root(&trace.step_hashes);
					let result = Arc::new(JobResult {
						key: job.key,
						model: model.id,
						input: job.input,
						tensors: trace.tensors,
						step_hashes: trace.step_hashes,
						trace_root: root,
						timings: Timings {
							queue_ms: ms(started.saturating_duration_since(job.submitted)),
							exec_ms: ms(t.exec),
							hash_ms: ms(t.hash),
							batch_size: n,
						},
						backend: executor.kind(),
					});
					finish(&inner, job.key, Ok(result.clone()));
					let _ = job.done.send(Some(Arc::new(Ok(result))));
				}
			},
			Err(e) => {
				for job in batch {
					let err = ServiceError::Execution(e.clone());
					finish(&inner, job.key, Err(err.clone()));
					let _ = job.done.send(Some(Arc::new(Err(err))));
				}
			},
		}
	}
}

fn ms(d: Duration) -> f64 {
	d.as_secs_f64() * 1e3
}

fn finish(inner: &Inner, key: Hash, result: Result<Arc<JobResult>, ServiceError>) {
	let mut cache = lock(&inner.cache);
	match result {
		Ok(r) => {
			cache.bytes += r.bytes();
			cache.entries.insert(key, Entry::Done(r));
			cache.order.push_back(key);
			while cache.order.len() > inner.config.cache_entries.max(1)
				|| (cache.bytes > inner.config.cache_bytes && cache.order.len() > 1)
			{
				let Some(old) = cache.order.pop_front() else { break };
				if let Some(Entry::Done(r)) = cache.entries.remove(&old) {
					cache.bytes = cache.bytes.saturating_sub(r.bytes());
				}
			}
		},
		// A failed job is forgotten, so that a later call can retry it.
		Err(_) => {
			cache.entries.remove(&key);
		},
	}
}
