//! The real data in `../shared/research`: `hearth-testdata`'s, here for
//! the harness's users.

pub use hearth_testdata::{attestation_fixture, research_file};
