//! Embeds the libtorch library directory as an rpath, so that `target/release/verity-worker`
//! (and the tests and benchmarks) find libtorch at run time without `LD_LIBRARY_PATH`.
//! torch-sys (`links = "tch"`) publishes the directory it linked against as
//! `DEP_TCH_LIBTORCH_LIB`, whether it came from `LIBTORCH` (scripts/install-libtorch.sh) or
//! from a Python PyTorch install (`LIBTORCH_USE_PYTORCH=1`).

fn main() {
	println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
	if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
		if !dir.is_empty() && std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
			println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
		}
	}
}
