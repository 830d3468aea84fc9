//! The hub as an appliance: what `hearth` does on a machine where the
//! Debian packages are installed.
//!
//! - [`setup`]: from an installed package to a running hub, in one command
//!   (answers checked by [`answers`], files made by [`render`]).
//! - [`status`]: one screen for the whole hub, judged by [`health`].
//! - [`backup`]: the whole hub in one file and back ([`archive`] decides
//!   what an archive may hold).
//! - [`pod`]: the gateway and messaging pod filled in for this hub.
//!
//! Pure decisions ([`answers`], [`render`], [`health`], [`archive`]) take
//! their inputs and return text or verdicts; the shells ([`setup`],
//! [`status`], [`backup`], [`system`], [`probe`]) carry them out.

pub mod answers;
pub mod archive;
pub mod backup;
pub mod health;
pub mod layout;
pub mod pod;
pub mod probe;
pub mod render;
pub mod setup;
pub mod status;
pub mod system;
