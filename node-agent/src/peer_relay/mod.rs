//! Peer relays (Tailscale's UDP relays): a device the policy names as a
//! relay (the destination of a `tailscale.com/cap/relay` grant) forwards
//! UDP between two devices that cannot reach each other directly, faster
//! than DERP's TCP and still end to end encrypted. [`server`] is the relay's
//! side, [`client`] a device's side for one peer; both pure, and both
//! speaking Tailscale's protocol (disco messages 4 to 9, Geneve headers), so
//! official clients and agents can use each other's relays.

pub mod client;
pub mod server;

/// The capability a grant gives its sources at the relay: they may ask it
/// for endpoints.
pub const CAP_RELAY: &str = "tailscale.com/cap/relay";
/// The companion capability the relay has at each source: it is offered
/// to them as a relay.
pub const CAP_RELAY_TARGET: &str = "tailscale.com/cap/relay-target";
