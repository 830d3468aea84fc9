//! Addresses, link state and routes of the mesh interface, through iproute2,
//! and the system resolver's view of it (through systemd-resolved).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An `ip` command failed.
#[derive(Debug, thiserror::Error)]
#[error("`ip {command}` failed: {reason}")]
pub struct NetError {
    command: String,
    reason: String,
}

async fn ip(args: &[&str]) -> Result<(), NetError> {
    let command = args.join(" ");
    let output = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|error| NetError {
            command: command.clone(),
            reason: error.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError {
            command,
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Sets the MTU and brings the interface up.
pub async fn bring_up(interface: &str, mtu: u32) -> Result<(), NetError> {
    ip(&[
        "link",
        "set",
        "dev",
        interface,
        "mtu",
        &mtu.to_string(),
        "up",
    ])
    .await
}

/// Gives the interface the node's mesh addresses, with the whole mesh
/// prefixes (100.64.0.0/10, fd7a:115c:a1e0::/48) routed through it.
pub async fn set_addresses(
    interface: &str,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
) -> Result<(), NetError> {
    ip(&[
        "-4",
        "addr",
        "replace",
        &format!("{ipv4}/10"),
        "dev",
        interface,
    ])
    .await?;
    ip(&[
        "-6",
        "addr",
        "replace",
        &format!("{ipv6}/48"),
        "dev",
        interface,
        "nodad",
    ])
    .await
}

/// Routes a peer's subnet through the interface.
pub async fn add_route(interface: &str, prefix: IpNet) -> Result<(), NetError> {
    ip(&["route", "replace", &prefix.to_string(), "dev", interface]).await
}

/// Removes a subnet route.
pub async fn remove_route(interface: &str, prefix: IpNet) -> Result<(), NetError> {
    ip(&["route", "del", &prefix.to_string(), "dev", interface]).await
}

/// Adds `address` (as a host prefix) to the interface: a local address for
/// a service the device answers itself (MagicDNS at 100.100.100.100, the
/// addresses of a Tailscale Service it hosts). Its scope is the host's, so
/// the kernel never picks it as the source of a packet into the mesh
/// (which peers would drop: it is not the node's); answers to packets sent
/// to it still come from it.
pub async fn add_local_address(interface: &str, address: IpAddr) -> Result<(), NetError> {
    let prefix = IpNet::from(address).to_string();
    ip(&[
        "addr", "replace", &prefix, "dev", interface, "scope", "host",
    ])
    .await
}

/// Takes away an address [`add_local_address`] added.
pub async fn remove_local_address(interface: &str, address: IpAddr) -> Result<(), NetError> {
    let prefix = IpNet::from(address).to_string();
    ip(&["addr", "del", &prefix, "dev", interface]).await
}

/// Points the system resolver at `resolver` for `domains` on `interface`
/// (systemd-resolved: `~domain` routes a domain there, a plain one is also
/// searched). Where there is no systemd-resolved, nothing is changed and
/// the log says how to ask the resolver directly.
pub async fn point_resolver(interface: &str, resolver: Ipv4Addr, domains: &[String]) {
    let resolvectl = |args: Vec<String>| async move {
        tokio::process::Command::new("resolvectl")
            .args(&args)
            .output()
            .await
            .map(|output| output.status.success())
            .unwrap_or(false)
    };
    let told = resolvectl(vec!["dns".into(), interface.into(), resolver.to_string()]).await
        && resolvectl(
            ["domain".to_owned(), interface.to_owned()]
                .into_iter()
                .chain(domains.iter().cloned())
                .collect(),
        )
        .await;
    if told {
        tracing::info!(
            ?domains,
            "the system resolver asks MagicDNS for the mesh's names"
        );
    } else {
        tracing::warn!(
            "no systemd-resolved: point the system resolver at {resolver} for {domains:?} by hand"
        );
    }
}
