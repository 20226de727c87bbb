//! The integration tests live in `api/` (one test binary); this crate has no library code.
