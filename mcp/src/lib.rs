//! PausePoint as MCP tools over stdio, a thin layer over `pausepoint-client`.
//!
//! Not written yet: it arrives with the MCP issue.

pub use pausepoint_client as client;
