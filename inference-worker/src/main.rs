//! `verity-worker`: the Verity inference worker (see README.md).

use std::{
	net::SocketAddr,
	path::{Path, PathBuf},
	process::ExitCode,
	sync::Arc,
	time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use verity_primitives::{trace_root, Hash};
use verity_worker::{
	backend::{parse_device, BackendKind, Executor},
	model::LoadedModel,
	rpc::{self, DEFAULT_LISTEN},
	service::{prove_against, JobResult, Service, ServiceConfig, Timings},
	store::ModelStore,
};
use verity_worker_api::{hex, ExecuteReply, ProveReply};

#[derive(Parser)]
#[command(
	name = "verity-worker",
	version,
	about = "Verity inference worker: exact libtorch execution of Verity models, JSON-RPC API, model store"
)]
struct Cli {
	#[command(subcommand)]
	command: Command,
}

#[derive(Args, Clone)]
struct StoreArgs {
	/// Model store directory (default: $VERITY_MODELS_DIR, else ~/.local/share/verity/models).
	#[arg(long, value_name = "DIR")]
	models: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ExecArgs {
	/// Backend: tch (exact libtorch) or reference (the reference interpreter).
	#[arg(long, default_value = "tch")]
	backend: BackendKind,
	/// Device of the tch backend: cpu, cuda or cuda:N.
	#[arg(long, default_value = "cpu", value_parser = parse_device)]
	device: tch::Device,
	/// Threads: libtorch intra-op threads (default: libtorch's choice); for a language model,
	/// the fast backend's threads (default: one per core).
	#[arg(long)]
	threads: Option<i32>,
}

/// One execution: the model, the input, how to run it, how to print it (`run` and `verify`).
#[derive(Args, Clone)]
struct RunArgs {
	/// A model file, or the id (0x...) of a model in the store.
	#[arg(long)]
	model: String,
	/// The input: a file of raw int8 bytes.
	#[arg(long)]
	input: PathBuf,
	#[command(flatten)]
	exec: ExecArgs,
	#[command(flatten)]
	store: StoreArgs,
	/// Print JSON (the `execute` or `prove` answer of the API) instead of text.
	#[arg(long)]
	json: bool,
}

#[derive(Subcommand)]
enum Command {
	/// Serve the JSON-RPC API over HTTP.
	Serve {
		/// Listen address.
		#[arg(long, default_value = DEFAULT_LISTEN)]
		listen: SocketAddr,
		#[command(flatten)]
		store: StoreArgs,
		#[command(flatten)]
		exec: ExecArgs,
		/// Jobs that may wait in the queue before new ones are refused (queue full).
		#[arg(long, default_value_t = 256)]
		queue: usize,
		/// Largest batch formed from queued jobs of one model.
		#[arg(long, default_value_t = 32)]
		max_batch: usize,
		/// Finished results kept in the cache.
		#[arg(long, default_value_t = 4096)]
		cache: usize,
		/// Wait of a call that gives no deadline_ms, in milliseconds.
		#[arg(long, default_value_t = 10_000)]
		default_wait_ms: u64,
		/// A language model to serve for `generate` (a `.vlm` with its tokenizer and chat
		/// template beside it, as `import` writes them); repeat for several.
		#[arg(long = "text-model")]
		text_models: Vec<PathBuf>,
	},
	/// Execute a model on one input; print the output, the step hashes and the trace root.
	Run(RunArgs),
	/// Re-execute and compare with a commitment (exit status 0: consistent, 1: mismatch). A
	/// classifier model needs `--input` and the commitment `run --json` prints; a language model
	/// (`.vlm`) takes the commitment `generate --commitment` writes and, with `--reveal`, finds
	/// the first wrong step and its step proof (judged here by the chain's own check).
	Verify(VerifyArgs),
	/// Manage the model store.
	Model {
		#[command(subcommand)]
		command: ModelCommand,
	},
	/// Quantize a float model (safetensors + JSON architecture) into a Verity model file.
	Quantize(verity_worker::quantize::QuantizeArgs),
	/// Import a language model (a Llama-family GGUF, or a glassllm npz archive) into a Verity
	/// transformer file (`OUT.vlm`, with `OUT.tokenizer.json` and `OUT.chat-template`), the same
	/// bytes and model id on every run; prints the model id.
	Import(ImportArgs),
	/// Generate text with an imported language model (its `.vlm`, with the tokenizer and chat
	/// template beside it): prints the text, the token ids, the job root and tokens/s.
	Generate(GenerateArgs),
}

#[derive(Args)]
struct VerifyArgs {
	/// A model file, or the id (0x...) of a model in the store; a `.vlm` is a language model.
	#[arg(long)]
	model: String,
	/// The input of a classifier model: a file of raw int8 bytes.
	#[arg(long)]
	input: Option<PathBuf>,
	#[command(flatten)]
	exec: ExecArgs,
	#[command(flatten)]
	store: StoreArgs,
	/// The commitment (JSON: `run --json`'s for a classifier, `generate --commitment`'s for a
	/// language model).
	#[arg(long)]
	commitment: PathBuf,
	/// Write the fraud proof of the first wrong step here (classifier: SCALE hex; language
	/// model: the SCALE-encoded `LmStepProof`).
	#[arg(long)]
	proof_out: Option<PathBuf>,
	/// Language models: the revealed step hashes (as `generate --reveal` writes them).
	#[arg(long)]
	reveal: Option<PathBuf>,
	/// Print JSON instead of text.
	#[arg(long)]
	json: bool,
}

/// `verify` of a generation: 0 consistent, 1 inconsistent.
fn verify_generation(args: &VerifyArgs) -> Result<u8> {
	use verity_worker::verify::{verify, Commitment, Outcome};
	let model = verity_worker::generate::TextModel::load(Path::new(&args.model))?;
	let read =
		|p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
	let c: Commitment = serde_json::from_slice(&read(&args.commitment)?)
		.map_err(|e| anyhow!("{} is not a commitment: {e}", args.commitment.display()))?;
	let reveal: Option<Vec<Vec<Hash>>> = match &args.reveal {
		Some(p) => Some(
			codec::Decode::decode(&mut read(p)?.as_slice())
				.map_err(|_| anyhow!("{} is not a list of step hashes", p.display()))?,
		),
		None => None,
	};
	let threads = args.exec.threads.unwrap_or(0).max(0) as usize;
	let outcome = verify(&model, &c, reveal.as_deref(), threads)?;
	let (line, json, code) = match &outcome {
		Outcome::Consistent => (
			"consistent: the tokens, position roots and job root are what the model computes"
				.to_string(),
			serde_json::json!({"outcome": "consistent"}),
			0,
		),
		Outcome::Differs { position, tokens_equal } => (
			format!(
				"inconsistent: position {position} differs (tokens {}){}",
				if *tokens_equal { "equal" } else { "differ" },
				if args.reveal.is_some() { "" } else { "; give --reveal to find the wrong step" }
			),
			serde_json::json!({"outcome": "differs", "position": position, "tokens_equal": tokens_equal}),
			1,
		),
		Outcome::Fraud { position, op, kind, proof } => {
			if let Some(p) = &args.proof_out {
				std::fs::write(p, codec::Encode::encode(proof.as_ref()))
					.with_context(|| format!("cannot write {}", p.display()))?;
			}
			(
				format!("fraud: the first wrong step is position {position}, op {op} ({kind:?}); its step proof is judged Fraud"),
				serde_json::json!({"outcome": "fraud", "position": position, "op": op, "kind": format!("{kind:?}")}),
				1,
			)
		},
	};
	if args.json {
		println!("{json}");
	} else {
		println!("{line}");
	}
	Ok(code)
}

#[derive(Args)]
struct GenerateArgs {
	/// The model file (`.vlm`, as `import` writes it).
	#[arg(long)]
	model: PathBuf,
	/// Plain text to continue.
	#[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
	prompt: Option<String>,
	/// A user message, rendered with the model's chat template.
	#[arg(long)]
	chat: Option<String>,
	/// Tokens to generate at most.
	#[arg(long, default_value_t = 64)]
	max_tokens: u32,
	/// Sampling temperature (0: greedy).
	#[arg(long, default_value_t = 0.0)]
	temperature: f64,
	/// Keep the K most likely tokens (0: all).
	#[arg(long, default_value_t = 0)]
	top_k: u32,
	/// Nucleus sampling threshold (1: off).
	#[arg(long, default_value_t = 1.0)]
	top_p: f64,
	/// Seed of the sampler.
	#[arg(long, default_value_t = 0)]
	seed: u64,
	/// Execution backend: the exact fast backend or the reference interpreter (same step
	/// hashes, same tokens).
	#[arg(long, value_enum, default_value_t = GenerateBackend::Fast)]
	backend: GenerateBackend,
	/// Threads of the fast backend (0: one per core).
	#[arg(long, default_value_t = 0)]
	threads: usize,
	/// Also write the commitment (job, tokens, position roots, job root) as JSON to this file
	/// (what `verify` checks).
	#[arg(long)]
	commitment: Option<PathBuf>,
	/// Also write every step hash (`[position][op]`, SCALE-encoded): the leaves an operator
	/// reveals, from which `verify` finds the first wrong step.
	#[arg(long)]
	reveal: Option<PathBuf>,
	/// Print a JSON object instead of text.
	#[arg(long)]
	json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GenerateBackend {
	Fast,
	Reference,
}

impl From<GenerateBackend> for verity_worker::generate::Backend {
	fn from(b: GenerateBackend) -> Self {
		match b {
			GenerateBackend::Fast => verity_worker::generate::Backend::Fast,
			GenerateBackend::Reference => verity_worker::generate::Backend::Reference,
		}
	}
}

fn generate(args: &GenerateArgs) -> Result<()> {
	use verity_worker::generate::{self, Prompt, Sampling, TextModel};
	let model = TextModel::load(&args.model)?;
	let prompt = match (&args.prompt, &args.chat) {
		(Some(p), _) => Prompt::Text(p.clone()),
		(None, Some(c)) => Prompt::Chat(c.clone()),
		(None, None) => bail!("give --prompt or --chat"),
	};
	let sampling = Sampling {
		temperature: args.temperature,
		top_k: args.top_k,
		top_p: args.top_p,
		seed: args.seed,
	};
	let opts = generate::RunOptions { backend: args.backend.into(), threads: args.threads };
	let backend = match args.backend {
		GenerateBackend::Fast => "fast",
		GenerateBackend::Reference => "reference",
	};
	let job = generate::job(&model, &prompt, args.max_tokens, &sampling)?;
	if opts.backend == generate::Backend::Fast {
		model.fast()?; // packing is not part of the generation's time
	}
	let started = std::time::Instant::now();
	let run = generate::run_job(&model, &job, opts)?;
	let seconds = started.elapsed().as_secs_f64();
	let text = model.tokenizer.decode(&run.tokens)?;
	let root = verity_primitives::lm::trace::job_root(&run.position_roots);
	let per_s = run.tokens.len() as f64 / seconds.max(1e-9);
	if let Some(path) = &args.commitment {
		let c = verity_worker::verify::Commitment::new(model.file.id(), &job, &run);
		std::fs::write(path, serde_json::to_vec_pretty(&c)?)
			.with_context(|| format!("cannot write {}", path.display()))?;
	}
	if let Some(path) = &args.reveal {
		std::fs::write(path, codec::Encode::encode(&run.step_hashes))
			.with_context(|| format!("cannot write {}", path.display()))?;
	}
	let root = hex::encode(root);
	let prefill_s = run.prefill_time.as_secs_f64();
	let decode_s = (seconds - prefill_s).max(1e-9);
	if args.json {
		let v = serde_json::json!({
			"model": hex::encode(model.file.id()), "text": text, "tokens": run.tokens,
			"prompt_tokens": job.prompt, "job_root": root, "positions": run.positions,
			"seconds": seconds, "tokens_per_s": per_s, "backend": backend,
			"prefill_positions": run.prefill_positions, "prefill_seconds": prefill_s,
			"decode_tokens_per_s": run.tokens.len() as f64 / decode_s,
			"hash_seconds": run.hash_time.as_secs_f64(),
		});
		println!("{v}");
	} else {
		println!("{text}");
		eprintln!("tokens {:?}", run.tokens);
		eprintln!("job root {root}");
		eprintln!(
			"{} tokens in {seconds:.2} s: {per_s:.2} tokens/s ({backend}; prompt {} positions in {prefill_s:.2} s)",
			run.tokens.len(),
			run.prefill_positions,
		);
	}
	Ok(())
}

#[derive(Args)]
struct ImportArgs {
	/// The GGUF file or npz archive.
	file: PathBuf,
	/// Output path without extension (default: the input's, beside it).
	#[arg(long)]
	out: Option<PathBuf>,
	/// The npz model's tokenizer file (default: `<stem>.tokenizer.json` beside it).
	#[arg(long)]
	tokenizer: Option<PathBuf>,
	/// Refuse the input unless its sha256 is this (hex).
	#[arg(long)]
	sha256: Option<String>,
	/// Positions of a generation at most (default: the model's context length).
	#[arg(long)]
	max_context: Option<u32>,
	/// Positions per attention part (default: 256 for GGUF, 32 for npz).
	#[arg(long)]
	attn_block: Option<u32>,
	/// Print a JSON object instead of text.
	#[arg(long)]
	json: bool,
}

fn import(args: &ImportArgs) -> Result<()> {
	use verity_worker::import::{self, Layout};
	let gguf = std::fs::File::open(&args.file)
		.and_then(|mut f| {
			let mut magic = [0u8; 4];
			std::io::Read::read_exact(&mut f, &mut magic).map(|_| &magic == b"GGUF")
		})
		.unwrap_or(false);
	let mut layout = if gguf { Layout::GGUF_DEFAULT } else { Layout::NPZ_DEFAULT };
	layout.max_context = args.max_context;
	if let Some(b) = args.attn_block {
		layout.attn_block = b;
	}
	let m = import::import(
		&args.file,
		args.tokenizer.as_deref(),
		Some(layout),
		args.sha256.as_deref(),
	)?;
	let out = args.out.clone().unwrap_or_else(|| args.file.with_extension(""));
	let (model, bytes) = m.write(&out)?;
	let [_, tokenizer, template] = import::output_paths(&out);
	let id = import::id_hex(&m.file.id());
	let h = &m.file.header;
	if args.json {
		let v = serde_json::json!({
			"model": id, "name": m.name, "file": model, "bytes": bytes,
			"tokenizer": tokenizer, "chat_template": template,
			"layers": h.n_layers, "dim": h.dim, "vocab": h.vocab, "max_context": h.max_context,
			"attn_block": h.attn_block,
		});
		println!("{v}");
	} else {
		println!("{id}");
		eprintln!(
			"{} ({} layers, width {}, vocabulary {}, context {}): {} ({} bytes)",
			if m.name.is_empty() { "model" } else { &m.name },
			h.n_layers,
			h.dim,
			h.vocab,
			h.max_context,
			model.display(),
			bytes
		);
	}
	Ok(())
}

#[derive(Subcommand)]
enum ModelCommand {
	/// Verify model files and add them to the store.
	Add {
		files: Vec<PathBuf>,
		#[command(flatten)]
		store: StoreArgs,
	},
	/// List the models of the store (each verified).
	List {
		#[command(flatten)]
		store: StoreArgs,
		#[arg(long)]
		json: bool,
	},
	/// Describe a model file or a stored model.
	Inspect {
		/// A model file, or the id (0x...) of a model in the store.
		model: String,
		#[command(flatten)]
		store: StoreArgs,
		#[arg(long)]
		json: bool,
	},
}

fn store_dir(args: &StoreArgs) -> PathBuf {
	if let Some(d) = &args.models {
		return d.clone();
	}
	if let Some(d) = std::env::var_os("VERITY_MODELS_DIR") {
		return PathBuf::from(d);
	}
	let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
	home.join(".local/share/verity/models")
}

fn open_store(args: &StoreArgs) -> Result<ModelStore> {
	Ok(ModelStore::open(store_dir(args))?)
}

/// A model from a file path, or from the store by id.
fn load_model(spec: &str, store: &StoreArgs) -> Result<LoadedModel> {
	let path = Path::new(spec);
	if path.exists() {
		let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
		return LoadedModel::from_bytes(&bytes, None)
			.map_err(|e| anyhow!("{}: {e}", path.display()));
	}
	match hex::decode_hash(spec) {
		Ok(id) => Ok(open_store(store)?.load(&id)?),
		Err(_) => bail!("{spec}: no such file, and not a model id"),
	}
}

fn set_threads(exec: &ExecArgs) {
	if let Some(n) = exec.threads {
		tch::set_num_threads(n.max(1));
	}
}

fn run_once(model: &LoadedModel, input: &[u8], exec: &ExecArgs) -> Result<JobResult> {
	if input.len() != model.input_len() {
		bail!("wrong input size: the model takes {} bytes, got {}", model.input_len(), input.len());
	}
	set_threads(exec);
	let mut executor = Executor::new(exec.backend, exec.device);
	let model = Arc::new(model.clone());
	let t0 = Instant::now();
	let (mut traces, t) =
		executor.run(&model, &[input]).map_err(|e| anyhow!("execution failed: {e}"))?;
	let _ = t0;
	let trace = traces.pop().ok_or_else(|| anyhow!("no result"))?;
	let root = trace_root(&trace.step_hashes);
	Ok(JobResult {
		key: verity_worker::service::job_key(&model.id, input),
		model: model.id,
		input: input.to_vec(),
		tensors: trace.tensors,
		step_hashes: trace.step_hashes,
		trace_root: root,
		timings: Timings {
			queue_ms: 0.0,
			exec_ms: t.exec.as_secs_f64() * 1e3,
			hash_ms: t.hash.as_secs_f64() * 1e3,
			batch_size: 1,
		},
		backend: exec.backend,
	})
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
	std::fs::read(path).with_context(|| format!("reading input {}", path.display()))
}

fn print_result(r: &JobResult, model: &LoadedModel) {
	let out = r.output();
	let signed: Vec<i8> = out.iter().map(|&b| b as i8).collect();
	println!("model       {}", hex::encode(r.model));
	println!("backend     {}", r.backend);
	println!("output      {}  {:?}", hex::encode(out), model.header.output_spec().shape);
	if signed.len() <= 64 {
		println!("            {signed:?}");
		if let Some((arg, _)) =
			signed.iter().enumerate().max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))
		{
			println!("argmax      {arg}");
		}
	}
	for (i, h) in r.step_hashes.iter().enumerate() {
		println!("h_{i:<9} {}", hex::encode(h));
	}
	println!("trace root  {}", hex::encode(r.trace_root));
	println!(
		"time        {:.3} ms execute, {:.3} ms hashing",
		r.timings.exec_ms, r.timings.hash_ms
	);
}

/// Parse a commitment file: `{"step_hashes": [...], "trace_root"?: .., "output"?: ..}` or a
/// bare JSON array of step hashes.
fn read_commitment(path: &Path) -> Result<(Vec<Hash>, Option<Hash>)> {
	let text =
		std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
	let v: serde_json::Value =
		serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
	let (list, root) = match &v {
		serde_json::Value::Array(a) => (a.clone(), None),
		serde_json::Value::Object(o) => (
			o.get("step_hashes")
				.and_then(|h| h.as_array())
				.cloned()
				.ok_or_else(|| anyhow!("{}: no step_hashes array", path.display()))?,
			o.get("trace_root").and_then(|r| r.as_str()).map(str::to_string),
		),
		_ => bail!("{}: expected an object with step_hashes or an array", path.display()),
	};
	let hashes = list
		.iter()
		.enumerate()
		.map(|(i, h)| {
			h.as_str()
				.ok_or_else(|| anyhow!("step hash {i} is not a string"))
				.and_then(|s| hex::decode_hash(s).map_err(|e| anyhow!("step hash {i}: {e}")))
		})
		.collect::<Result<Vec<_>>>()?;
	let root =
		root.map(|r| hex::decode_hash(&r).map_err(|e| anyhow!("trace_root: {e}"))).transpose()?;
	Ok((hashes, root))
}

fn inspect(model: &LoadedModel, json: bool) {
	if json {
		let steps: Vec<_> = model
			.header
			.ops
			.iter()
			.zip(&model.info.steps)
			.map(|(op, s)| {
				serde_json::json!({
					"step": s.step,
					"kind": format!("{:?}", op.kind),
					"inputs": op.inputs,
					"output_shape": s.output_shape,
					"output_zero_point": op.output.zero_point,
					"clamp": [op.act_min, op.act_max],
					"weight_bytes": s.weight_bytes,
					"macs": s.macs,
					"proof_bytes": s.proof_bytes,
				})
			})
			.collect();
		let v = serde_json::json!({
			"id": hex::encode(model.id),
			"input_shape": model.header.input.shape,
			"input_zero_point": model.header.input.zero_point,
			"input_scale": model.header.input.scale(),
			"num_ops": model.num_ops(),
			"header_bytes": model.info.header_bytes,
			"total_macs": model.info.total_macs,
			"total_weight_bytes": model.info.total_weight_bytes,
			"max_step_macs": model.info.max_step_macs,
			"max_step_proof_bytes": model.info.max_step_proof_bytes,
			"steps": steps,
		});
		println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
		return;
	}
	println!("id            {}", hex::encode(model.id));
	println!(
		"input         {:?} zero point {} scale {}",
		model.header.input.shape,
		model.header.input.zero_point,
		model.header.input.scale()
	);
	println!("ops           {}", model.num_ops());
	println!("header bytes  {}", model.info.header_bytes);
	println!("weight bytes  {}", model.info.total_weight_bytes);
	println!("MACs          {} (largest step {})", model.info.total_macs, model.info.max_step_macs);
	println!("largest proof {} bytes", model.info.max_step_proof_bytes);
	for (op, s) in model.header.ops.iter().zip(&model.info.steps) {
		let kind = format!("{:?}", op.kind);
		let kind = kind.split(['(', ' ']).next().unwrap_or("");
		println!(
			"  {:>3} {:<15} in {:?} -> {:?} zp {} clamp [{}, {}] weights {} macs {}",
			s.step,
			kind,
			op.inputs,
			s.output_shape,
			op.output.zero_point,
			op.act_min,
			op.act_max,
			s.weight_bytes,
			s.macs
		);
	}
}

async fn serve(
	listen: SocketAddr,
	store: &StoreArgs,
	exec: &ExecArgs,
	config: ServiceConfig,
	gen: verity_worker::genservice::GenService,
) -> Result<()> {
	set_threads(exec);
	let store = open_store(store)?;
	let (models, bad) = store.load_all()?;
	for e in &bad {
		eprintln!("verity-worker: refused: {e}");
	}
	eprintln!(
		"verity-worker: {} model(s) from {}, backend {} on {:?}",
		models.len(),
		store.dir().display(),
		config.backend,
		config.device
	);
	let config = ServiceConfig { store: Some(store.clone()), ..config };
	let service = Service::start(config, models);
	let (addr, handle) =
		rpc::serve(service, gen, listen).await.with_context(|| format!("listening on {listen}"))?;
	eprintln!("verity-worker: JSON-RPC over HTTP on http://{addr}");
	tokio::select! {
		_ = handle.clone().stopped() => {},
		_ = tokio::signal::ctrl_c() => { let _ = handle.stop(); },
	}
	Ok(())
}

/// The whole program (also the body of `verity-worker-faulty`, which includes this file as a
/// module and turns fault injection on first).
pub(crate) fn main() -> ExitCode {
	verity_worker::thp::reexec_with_huge_pages();
	let cli = Cli::parse();
	match run(cli) {
		Ok(code) => code,
		Err(e) => {
			eprintln!("verity-worker: error: {}", format!("{e:#}").replace('\n', " "));
			ExitCode::from(2)
		},
	}
}

fn run(cli: Cli) -> Result<ExitCode> {
	match cli.command {
		Command::Serve {
			listen,
			store,
			exec,
			queue,
			max_batch,
			cache,
			default_wait_ms,
			text_models,
		} => {
			if exec.device != tch::Device::Cpu && !tch::Cuda::is_available() {
				bail!("CUDA is not available to libtorch on this machine");
			}
			let config = ServiceConfig {
				backend: exec.backend,
				device: exec.device,
				queue_capacity: queue.max(1),
				max_batch: max_batch.max(1),
				cache_entries: cache.max(1),
				default_wait: std::time::Duration::from_millis(default_wait_ms),
				..ServiceConfig::default()
			};
			let mut models = Vec::new();
			for path in &text_models {
				let m = verity_worker::generate::TextModel::load(path)?;
				m.fast()?; // packed before the first request
				eprintln!(
					"verity-worker: language model 0x{} from {}",
					hex::encode(m.file.id()),
					path.display()
				);
				models.push(m);
			}
			let gen = verity_worker::genservice::GenService::start(
				models,
				verity_worker::genservice::GenConfig {
					default_wait: std::time::Duration::from_millis(default_wait_ms),
					threads: exec.threads.unwrap_or(0).max(0) as usize,
					..Default::default()
				},
			);
			let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
			rt.block_on(serve(listen, &store, &exec, config, gen))?;
			Ok(ExitCode::SUCCESS)
		},
		Command::Run(RunArgs { model, input, exec, store, json }) => {
			let model = load_model(&model, &store)?;
			let input = read_input(&input)?;
			let r = run_once(&model, &input, &exec)?;
			if json {
				let reply = ExecuteReply::Done(rpc::executed(&r));
				println!("{}", serde_json::to_string_pretty(&reply)?);
			} else {
				print_result(&r, &model);
			}
			Ok(ExitCode::SUCCESS)
		},
		Command::Verify(args) if args.model.ends_with(".vlm") => {
			Ok(ExitCode::from(verify_generation(&args)?))
		},
		Command::Verify(VerifyArgs {
			model,
			input,
			exec,
			store,
			json,
			commitment,
			proof_out,
			..
		}) => {
			let model = load_model(&model, &store)?;
			let input =
				input.ok_or_else(|| anyhow!("--input is required for a classifier model"))?;
			let input = read_input(&input)?;
			let (committed, root) = read_commitment(&commitment)?;
			let expected = model.header.ops.len() + 1;
			if committed.len() != expected {
				bail!(
					"the commitment has {} step hashes, the model has {expected}",
					committed.len()
				);
			}
			if let Some(root) = root {
				if root != trace_root(&committed) {
					bail!("the commitment's trace_root is not the root of its step_hashes");
				}
			}
			let r = run_once(&model, &input, &exec)?;
			let reply =
				rpc::proved(prove_against(&model, &r, &committed).map_err(|e| anyhow!("{e}"))?);
			if let (ProveReply::Fraud { proof, .. }, Some(p)) = (&reply, &proof_out) {
				std::fs::write(p, format!("{}\n", hex::encode(proof)))
					.with_context(|| format!("writing {}", p.display()))?;
			}
			if json {
				println!("{}", serde_json::to_string(&reply)?);
			} else {
				match &reply {
					ProveReply::Consistent { trace_root } => println!(
						"consistent: all {} step hashes match (trace root {})",
						committed.len(),
						hex::encode(trace_root)
					),
					ProveReply::Fraud { step, proof, verdict } => {
						let at = |hashes: &[Hash]| {
							hashes.get(*step as usize).map(hex::encode).unwrap_or_default()
						};
						println!(
							"MISMATCH: first wrong step {step} (committed {}, honest {}); fraud proof of {} bytes, check_fraud_proof: {verdict}",
							at(&committed),
							at(&r.step_hashes),
							proof.len()
						);
						if let Some(p) = &proof_out {
							println!("proof written to {}", p.display());
						}
					},
					ProveReply::Pending { .. } => {},
				}
			}
			Ok(match reply {
				ProveReply::Consistent { .. } => ExitCode::SUCCESS,
				_ => ExitCode::from(1),
			})
		},
		Command::Model { command } => match command {
			ModelCommand::Add { files, store } => {
				if files.is_empty() {
					bail!("no model file given");
				}
				let store = open_store(&store)?;
				for f in files {
					let m = store.add_file(&f)?;
					println!("{}  {}", hex::encode(m.id), f.display());
				}
				Ok(ExitCode::SUCCESS)
			},
			ModelCommand::List { store, json } => {
				let store = open_store(&store)?;
				let (models, bad) = store.load_all()?;
				if json {
					let list: Vec<_> = models.iter().map(rpc::model_entry).collect();
					println!("{}", serde_json::to_string_pretty(&list)?);
				} else {
					for m in &models {
						println!(
							"{}  {} ops  input {:?}  output {:?}  {} MACs",
							hex::encode(m.id),
							m.num_ops(),
							m.header.input.shape,
							m.header.output_spec().shape,
							m.info.total_macs
						);
					}
				}
				for e in &bad {
					eprintln!("verity-worker: refused: {e}");
				}
				Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
			},
			ModelCommand::Inspect { model, store, json } => {
				let m = load_model(&model, &store)?;
				inspect(&m, json);
				Ok(ExitCode::SUCCESS)
			},
		},
		Command::Quantize(args) => {
			verity_worker::quantize::run(&args)?;
			Ok(ExitCode::SUCCESS)
		},
		Command::Import(args) => {
			import(&args)?;
			Ok(ExitCode::SUCCESS)
		},
		Command::Generate(args) => {
			generate(&args)?;
			Ok(ExitCode::SUCCESS)
		},
	}
}
