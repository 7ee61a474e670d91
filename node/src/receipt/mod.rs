//! `verity-node receipt fetch | verify`: a closed job's receipt that anyone can check offline,
//! without trusting the RPC node it came from.
//!
//! A receipt file (JSON, hex for bytes) holds:
//! - every block header from block 1 to a block `F` finalized by GRANDPA;
//! - the GRANDPA justification of `F`;
//! - a storage proof of the job's `Jobs.Receipts` record in the state of `F`;
//! - a storage proof of the job's `Jobs.Jobs` record in the state of the block before it closed
//!   (the record that still holds the input, so the model can be re-run);
//! - the claims a reader sees (outcome, model, operator, output, trace root, ...), which must equal
//!   what the proofs show.
//!
//! `verify` trusts only the chain specification it is given (`--chain`, required): it builds the
//! genesis state from it, hence the genesis hash and the GRANDPA authority set. A set that
//! contains public development keys (`//Alice`, ...) is refused unless `--allow-dev-keys`: anyone
//! can mint receipts for such a chain. Then it checks that the
//! headers form one chain from that genesis, that none of them changes the GRANDPA authority set
//! (the Verity runtime never does; a receipt that spans a change is refused rather than trusted),
//! that the justification is signed by more than two thirds of the set and finalizes the last
//! header, that both storage proofs match the state roots of their headers, and that the claims
//! equal the proven records. With `--model FILE` it re-runs the model with the reference
//! interpreter on the proven input and compares the output and the trace root.
//!
//! Limits: the header chain starts at genesis (a receipt grows with the chain by about 130 bytes
//! per block); a light client with a trusted checkpoint would shorten it. The RPC client speaks
//! plain HTTP (the node serves HTTP and WebSocket on one port); TLS is not needed for soundness.
//!
//! Modules: [`file`] (the format, storage keys, claims), [`fetch`], [`verify`] (and re-run),
//! [`print`] (what the commands print); this one is the command-line glue.

use std::path::PathBuf;

use pallet_verity_jobs::JobId;

pub mod fetch;
pub mod file;
pub mod print;
#[cfg(test)]
mod tests;
pub mod verify;

pub use file::{ReceiptFile, FORMAT};
pub use verify::{development_keys, rerun, trust_root, verify, TrustRoot, Verified};

/// Every failure is one readable line.
pub type Result<T> = std::result::Result<T, String>;

/// `verity-node receipt ...`
#[derive(Debug, clap::Subcommand)]
pub enum ReceiptCmd {
	/// Fetch a closed job's receipt from a node and write it to a file.
	Fetch(FetchCmd),
	/// Verify a receipt file offline against a chain specification.
	Verify(VerifyCmd),
}

/// `verity-node receipt fetch`
#[derive(Debug, clap::Parser)]
pub struct FetchCmd {
	/// The job.
	#[arg(long)]
	pub job: JobId,
	/// The node's JSON-RPC endpoint (HTTP; `ws://` is read as `http://`, the node serves both on
	/// one port).
	#[arg(long, default_value = "http://127.0.0.1:9944")]
	pub rpc: String,
	/// Where to write the receipt (default: `receipt-<job>.json`).
	#[arg(long)]
	pub out: Option<PathBuf>,
}

/// `verity-node receipt verify`
#[derive(Debug, clap::Parser)]
pub struct VerifyCmd {
	/// The receipt file.
	pub file: PathBuf,
	/// The chain specification to trust: a chain-spec file, or `dev`, `local`, `testnet`.
	/// Required: there is no default chain to trust.
	#[arg(long)]
	pub chain: String,
	/// Trust a chain whose GRANDPA authorities include public development keys (`//Alice`,
	/// `//Bob`, ...): anyone can sign its blocks, so its receipts prove nothing to a third
	/// party. For local dev and test chains only.
	#[arg(long)]
	pub allow_dev_keys: bool,
	/// The model file: re-run the model on the proven input and compare output and trace root.
	#[arg(long)]
	pub model: Option<PathBuf>,
}

impl FetchCmd {
	/// Fetch the receipt, write it and print one line.
	pub fn run(&self) -> Result<()> {
		let receipt = fetch::fetch(&fetch::Rpc::new(&self.rpc)?, self.job)?;
		let path =
			self.out.clone().unwrap_or_else(|| PathBuf::from(format!("receipt-{}.json", self.job)));
		let text = serde_json::to_string_pretty(&receipt).map_err(|e| e.to_string())?;
		std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
		println!("{}", print::fetched(&receipt, &path));
		Ok(())
	}
}

impl VerifyCmd {
	/// Verify the file against `spec` (and re-run the model if given), and print what it proves.
	pub fn run(&self, spec: &dyn sc_service::ChainSpec) -> Result<()> {
		let text = std::fs::read_to_string(&self.file)
			.map_err(|e| format!("reading {}: {e}", self.file.display()))?;
		let file: ReceiptFile = serde_json::from_str(&text)
			.map_err(|e| format!("{} is not a receipt file: {e}", self.file.display()))?;
		let root = trust_root(spec)?;
		let dev = development_keys(&root.authorities);
		if !dev.is_empty() {
			let keys = dev.join(", ");
			if !self.allow_dev_keys {
				return Err(format!(
					"chain {:?} is finalized by public development keys ({keys}): anyone can \
					 sign its blocks, so a receipt proves nothing; --allow-dev-keys to check one \
					 of a local dev or test chain anyway",
					spec.id()
				));
			}
			eprintln!(
				"warning: chain {:?} is finalized by public development keys ({keys}) \
				 (--allow-dev-keys)",
				spec.id()
			);
		}
		let v = verify(&file, &root)?;
		let rerun = match &self.model {
			Some(path) => {
				let bytes =
					std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
				Some(rerun(&bytes, &v)?)
			},
			None => None,
		};
		println!("{}", print::verified(spec.id(), &root, &file, &v, rerun.as_deref()));
		Ok(())
	}
}
