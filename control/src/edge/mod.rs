//! Edge compute: `pfs edge serve` (an HTTP server computing byte kernels over
//! `file://` data under a root and `http(s)://` data fetched with Range requests),
//! its origin mode (`GET /data/PATH`), and the `pfs compute` / `pfs bench edge`
//! clients. Normative text: `specs/edge-api.md` and `specs/edge-openapi.json`.
//!
//! Layout: [`request`] parses and checks a compute request (no I/O);
//! [`policy`] holds the allowlist, root confinement, budgets and cache etiquette
//! (no I/O, the clock is passed in); [`stream`] folds bytes arriving in ranges into
//! per-instruction results (no I/O); [`fetch`] does the HTTP Range I/O;
//! [`server`] is the axum router; [`client`] the command-line clients;
//! [`xfer`] the arithmetic-transfer routes (blob, objects, transfers).

pub mod client;
pub mod error;
pub mod fetch;
pub mod metrics;
pub mod policy;
pub mod request;
pub mod server;
pub mod stream;
pub mod xfer;

pub use error::EdgeError;
pub use server::{EdgeConfig, EdgeServer};
