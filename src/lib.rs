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
