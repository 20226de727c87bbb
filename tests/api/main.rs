//! Integration tests: one binary, real PostgreSQL, real HTTP, real concurrency.
//!
//! Each test spawns the local server on an ephemeral port over its own freshly migrated database
//! (a copy of a template the migrations were applied to once: `TestDb::migrated`), dropped when
//! the test ends (see `helpers`).

mod best_available;
mod booking;
mod cache;
mod catalog;
#[path = "../common/mod.rs"]
mod common;
mod crash;
mod deadlines;
mod deployment;
mod helpers;
mod herd;
mod identity;
mod lambda;
mod lifecycle;
mod notifier;
mod onsale;
mod openapi;
mod plans;
mod proxy;
mod ratelimit;
mod reads;
mod redis_server;
mod roles;
mod validation;
mod venues;
mod waiting_room;
mod waitlist;
