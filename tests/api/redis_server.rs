//! The private redis-server and the faulty route to Redis live in test-support; cache.rs still
//! names them from here.

pub use test_support::{RedisRoute, RedisServer};
