//! The oblivious half of private compute: the OHTTP gateway, the relay and
//! the config server (the OpenPCC design's unlinkability layer). A device
//! encapsulates its request to the gateway's key and sends it to a relay;
//! the relay sees the device but cannot read; the gateway reads the inner
//! request's target but never sees the device; the router behind it sees
//! neither. The request to the compute node stays sealed to the node's key
//! all the way.

pub mod allow;
pub mod auth;
pub mod gateway;
pub mod relay;
pub mod seeds;
