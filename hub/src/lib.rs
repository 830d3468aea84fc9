//! The hub as an appliance: what `hearth` does on a machine where the
//! Debian packages are installed.
//!
//! - [`setup`]: from an installed package to a running hub, in one command,
//!   in parts: the answers checked by [`answers`], the machine by
//!   [`machine`], the configuration written by [`configure`] (files made by
//!   [`render`]), the services started by [`services`], every step taken
//!   back by [`undo`] when a later one fails; what was told is [`record`].
//! - [`status`]: one screen for the whole hub, judged by [`health`].
//! - [`backup`]: the whole hub in one file and back ([`archive`] decides
//!   what an archive may hold).
//! - [`pod`]: the gateway and messaging pod filled in for this hub, and the
//!   whole hub as one pod for a machine without systemd ([`manager`] runs
//!   the hub's services under systemd or through [`podman`]'s API;
//!   [`launch`] starts a service in a container as its unit would).
//!
//! Pure decisions ([`answers`], [`render`], [`health`], [`archive`]) take
//! their inputs and return text or verdicts; the shells ([`setup`],
//! [`status`], [`backup`], [`system`], [`probe`]) carry them out.

pub mod answers;
pub mod archive;
pub mod backup;
pub mod checks;
pub mod configure;
pub mod health;
pub mod launch;
pub mod layout;
pub mod machine;
pub mod manager;
pub mod members;
pub mod pod;
pub mod podman;
pub mod probe;
pub mod record;
pub mod render;
pub mod services;
pub mod setup;
pub mod status;
pub mod steps;
pub mod system;
pub mod undo;
pub mod words;
