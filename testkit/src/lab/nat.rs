//! Private networks behind NATs, for testing how nodes meet across them: a
//! [`Site`] is a router on the lab's bridge (the "internet") with a LAN of
//! its own behind it, masquerading what leaves and letting in only replies
//! to what went out (no port forwarding). Hosts added to a site sit on its
//! LAN with the router as their gateway.
//!
//! The two kinds of NAT that matter for hole punching:
//! - [`Nat::EndpointIndependent`]: nftables `masquerade` keeps a socket's
//!   port, so every destination sees it at the same public address and port
//!   (a home router or a café's);
//! - [`Nat::Symmetric`]: `masquerade fully-random` picks a new public port
//!   for every destination (address- and port-dependent mapping, as mobile
//!   carriers' NATs often do), so the address a STUN server sees is of no
//!   use to a peer.
//!
//! Like home routers, a site's router drops unsolicited packets to its own
//! address. (Were they let in, each would leave a connection-tracking entry
//! that takes the port a LAN host's next outgoing packet to the same peer
//! needs, and the NAT would move that host to another port.)

use std::process::Command;

use super::{Host, Lab, run};

/// How a site's router maps its LAN's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// The same public address and port for every destination.
    EndpointIndependent,
    /// A new public port for every destination.
    Symmetric,
}

/// A LAN behind a NAT router.
#[derive(Clone, Debug)]
pub struct Site {
    /// The router (its address is the site's public address).
    pub router: Host,
    /// The LAN's /24 (`192.168.<n>.0`), as its third byte.
    pub subnet: u8,
    /// The NAT's kind.
    pub nat: Nat,
}

impl Lab {
    /// A site named `name` behind a NAT of kind `nat`: a router on the bridge
    /// with LAN `192.168.<subnet>.0/24` behind it.
    pub fn nat_site(&mut self, name: &str, subnet: u8, nat: Nat) -> Site {
        let router = self.host(name);
        self.exec(&router, &["ip", "link", "add", "lan0", "type", "bridge"]);
        self.exec(
            &router,
            &[
                "ip",
                "addr",
                "add",
                &format!("192.168.{subnet}.1/24"),
                "dev",
                "lan0",
            ],
        );
        self.exec(&router, &["ip", "link", "set", "lan0", "up"]);
        self.exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        let masquerade = match nat {
            Nat::EndpointIndependent => "masquerade",
            Nat::Symmetric => "masquerade fully-random",
        };
        let rules = format!(
            "table ip lab_nat {{
                chain postrouting {{
                    type nat hook postrouting priority srcnat; policy accept;
                    oifname \"eth0\" ip saddr 192.168.{subnet}.0/24 {masquerade}
                }}
                chain forward {{
                    type filter hook forward priority filter; policy drop;
                    iifname \"lan0\" accept
                    iifname \"eth0\" ct state established,related accept
                }}
                chain input {{
                    type filter hook input priority filter; policy accept;
                    iifname \"eth0\" ct state new drop
                }}
            }}"
        );
        let mut command = self.command(&router, "nft");
        command.args(["-f", "-"]);
        feed(command, &rules);
        Site {
            router,
            subnet,
            nat,
        }
    }

    /// A host named `name` on `site`'s LAN, its default route through the
    /// site's router.
    pub fn site_host(&mut self, site: &Site, name: &str) -> Host {
        let number = self.extra.len() + 2;
        let namespace = format!("{}-{name}", self.prefix);
        run(Command::new("ip").args(["netns", "add", &namespace]));
        self.extra.push(namespace.clone());
        let port = format!("l{number}");
        run(Command::new("ip").args([
            "link",
            "add",
            "name",
            "eth0",
            "netns",
            &namespace,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &site.router.namespace,
        ]));
        self.exec(
            &site.router,
            &["ip", "link", "set", &port, "master", "lan0"],
        );
        self.exec(&site.router, &["ip", "link", "set", &port, "up"]);
        let address = std::net::Ipv4Addr::new(192, 168, site.subnet, number as u8);
        let host = Host {
            name: name.to_owned(),
            namespace,
            address,
            interface: "eth0".into(),
        };
        self.exec(&host, &["ip", "link", "set", "lo", "up"]);
        self.exec(
            &host,
            &["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"],
        );
        self.exec(&host, &["ip", "link", "set", "eth0", "up"]);
        self.exec(
            &host,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{}.1", site.subnet),
            ],
        );
        host
    }

    /// Drops UDP between the public addresses of sites `a` and `b` (both
    /// ways, in `a`'s router) while `cut` is true, and lets it pass again
    /// when false: a direct path that breaks and heals.
    pub fn cut_udp_between(&self, a: &Site, b: &Site, cut: bool) {
        if cut {
            let rules = format!(
                "table inet lab_cut {{
                    chain block {{
                        type filter hook forward priority -10; policy accept;
                        ip daddr {peer} meta l4proto udp drop
                        ip saddr {peer} meta l4proto udp drop
                    }}
                }}",
                peer = b.router.address
            );
            let mut command = self.command(&a.router, "nft");
            command.args(["-f", "-"]);
            feed(command, &rules);
        } else {
            self.exec(&a.router, &["nft", "delete", "table", "inet", "lab_cut"]);
        }
    }
}

/// Runs `command` with `input` on its stdin, failing the test on error.
fn feed(mut command: Command, input: &str) {
    use std::io::Write as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("the command reads its input");
    let output = child.wait_with_output().expect("the command ends");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
