//! Command-line interface.

use sc_cli::RunCmd;

/// The `verity-node` command line.
#[derive(Debug, clap::Parser)]
pub struct Cli {
	/// A subcommand, or none to run the node.
	#[command(subcommand)]
	pub subcommand: Option<Subcommand>,

	/// Options of the node itself.
	#[clap(flatten)]
	pub run: RunCmd,

	/// Options of the node's agent (its off-chain worker).
	#[clap(flatten)]
	pub agent: AgentParams,
}

/// The agent: the off-chain worker that executes the jobs assigned to the operator keys (`vrty`)
/// of this node's keystore and, as a watcher, re-executes committed jobs and proves fraud. It
/// runs on every node unless `--offchain-worker never` is given.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentParams {
	/// The inference worker's JSON-RPC address (`verity-worker serve`).
	#[arg(long, value_name = "URL", default_value = verity_runtime::AGENT_DEFAULT_WORKER_URL)]
	pub inference_worker: String,

	/// Watch: re-execute committed jobs during their challenge window and prove fraud.
	#[arg(long)]
	pub watcher: bool,

	/// The share of committed jobs a watcher re-executes, in percent (each node samples its own
	/// jobs).
	#[arg(long, value_name = "PERCENT", default_value_t = 100.0, requires = "watcher")]
	pub watch_share: f64,
}

impl AgentParams {
	/// The settings the agent reads from the off-chain storage.
	pub fn settings(&self) -> Result<verity_runtime::AgentSettings, String> {
		let url = self.inference_worker.trim_end_matches('/');
		if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 8 {
			return Err(format!(
				"--inference-worker {}: expected an http:// or https:// URL",
				self.inference_worker
			));
		}
		if !(self.watch_share > 0.0 && self.watch_share <= 100.0) {
			return Err(format!(
				"--watch-share {}: expected a percentage in (0, 100]",
				self.watch_share
			));
		}
		Ok(verity_runtime::AgentSettings {
			worker_url: url.as_bytes().to_vec(),
			watch_permill: self.watcher.then(|| (self.watch_share * 10_000.0).round() as u32),
		})
	}
}

/// The subcommands of `verity-node`.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
	/// Key management utilities (generate, inspect, insert into a keystore, ...).
	#[command(subcommand)]
	Key(sc_cli::KeySubcommand),

	/// Build a chain specification (deprecated in favour of `export-chain-spec`).
	BuildSpec(sc_cli::BuildSpecCmd),

	/// Export the chain specification.
	ExportChainSpec(sc_cli::ExportChainSpecCmd),

	/// Validate blocks.
	CheckBlock(sc_cli::CheckBlockCmd),

	/// Export blocks.
	ExportBlocks(sc_cli::ExportBlocksCmd),

	/// Export the state of a given block into a chain spec.
	ExportState(sc_cli::ExportStateCmd),

	/// Import blocks.
	ImportBlocks(sc_cli::ImportBlocksCmd),

	/// Remove the whole chain.
	PurgeChain(sc_cli::PurgeChainCmd),

	/// Revert the chain to a previous state.
	Revert(sc_cli::RevertCmd),

	/// Runtime, storage, block and machine benchmarks (only in a node built with
	/// `--features runtime-benchmarks`).
	#[cfg(feature = "runtime-benchmarks")]
	#[command(subcommand)]
	Benchmark(frame_benchmarking_cli::BenchmarkCmd),

	/// Database meta columns information.
	ChainInfo(sc_cli::ChainInfoCmd),

	/// A closed job's receipt: fetch it from a node, verify it offline against a chain spec
	/// (header chain, GRANDPA justification, storage proofs; optionally re-run the model).
	#[command(subcommand)]
	Receipt(verity_node::receipt::ReceiptCmd),
}
