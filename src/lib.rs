//! Charla: a real-time live-chat runtime. Visitors chat from a widget, operators answer from
//! a console, and actors in between route, order and persist every message.
//!
//! [`app::start`] builds and starts the whole server; the binary and the tests both use it.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod crm;
pub mod error;
pub mod files;
pub mod http;
pub mod mail;
pub mod model;
pub mod protocol;
pub mod runtime;
pub mod store;
pub mod telemetry;

/// Every binary linked with Charla (the server, the load harness that re-executes itself as
/// the server, the tests) allocates with jemalloc: under load glibc's malloc spent about a
/// quarter of the server's CPU consolidating its free lists (docs/BENCHMARKS.md, "Where the
/// time goes").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
