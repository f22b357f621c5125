//! The typed async client of the PausePoint API, used by the `pp` CLI and the MCP server.
//!
//! Not written yet: it arrives with the CLI issue. Until then this crate only re-exports
//! the wire types so that its dependents compile against the final layout.

pub use pausepoint_api as api;
