//! # verity-worker
//!
//! The inference worker that Verity operators and watchers run beside their node: it executes
//! Verity models (`verity-primitives`) bit-exactly with libtorch, commits to every activation
//! (step hashes, trace root), finds the first wrong step of another operator's commitment and
//! builds the fraud proof, and serves all this over JSON-RPC (HTTP). It holds no keys.
//!
//! * [`exact`]: the libtorch backend, bit-identical to the reference interpreter.
//! * [`backend`]: backend selection (`tch` or `reference`).
//! * [`model`], [`store`]: verified models and the model directory.
//! * [`service`]: bounded job queue, batching executor, result cache, deadlines.
//! * [`rpc`]: the JSON-RPC API.
//! * [`quantize`]: float model + calibration data → Verity model file.
//! * [`lm_fast`]: the exact fast backend of language models (KV cache, packed integer
//!   kernels), bit-identical to the reference interpreter on every step hash.
//! * [`lm_float`]: a plain fp32 libtorch forward of an imported language model (accuracy and
//!   speed baseline).
//! * [`float`]: a plain fp32 libtorch run of the same architecture (benchmark baseline).
//! * [`generate`], [`verify`]: text generation with imported language models, and checking
//!   someone's generation against its commitment (first wrong step, step proof).
//! * [`thp`]: transparent huge pages for the heap (the binaries re-execute themselves with
//!   glibc's tunable).
//! * `fault` (cargo feature `fault-injection`, test builds only): the faulty worker of the
//!   end-to-end tests (`verity-worker-faulty`).

pub mod backend;
pub mod exact;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod float;
pub mod generate;
pub mod genservice;
pub mod import;
pub mod lm_fast;
pub mod lm_float;
pub mod model;
pub mod quantize;
pub mod rpc;
pub mod service;
pub mod store;
pub mod thp;
pub mod tokenize;
pub mod verify;
