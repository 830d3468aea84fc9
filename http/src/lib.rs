//! The HTTP edge Hearth's servers share (the coordinator, the AI gateway,
//! the messaging service).
//!
//! - [`limits`]: how many connections are accepted, in all and per source
//!   address, and how long a client may take to send a request head, so
//!   that a slow or flooding client cannot starve the others.
//! - [`connection`]: one connection's deadlines (first request head, idle,
//!   body) and its bodies' memory budget, and the driver that applies them.
//! - [`serve`]: the accept loops that apply them, for plain TCP and TLS
//!   (and TLS with plain HTTP redirected on the same port), and for HTTP/2 carried inside another protocol (ts2021).
//! - [`certificate_files`]: a certificate kept in PEM files that are
//!   renewed in place, served as they are now.
//! - [`etag`]: conditional requests (`If-None-Match`), for files served
//!   again unchanged.
//! - [`origin`]: the same-origin rule that keeps web pages of other sites
//!   (and DNS-rebinding names) away from services a browser can reach.
//! - [`throttle`]: at most one log line per period for floods of the same
//!   event.
//! - `probe` (feature `probe`): clients that misbehave on purpose, for the
//!   tests of every server built on this edge.

pub mod certificate_files;
pub mod connection;
pub mod etag;
pub mod forwarded;
pub mod limits;
pub mod origin;
#[cfg(any(test, feature = "probe"))]
pub mod probe;
pub mod serve;
pub mod throttle;

pub use limits::{Gate, Limits, Scale, Ticket};
pub use origin::{CrossSite, SameOrigin};
pub use throttle::Throttle;
