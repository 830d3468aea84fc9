//! Where a node can be reached: the candidates it reports, checked and
//! ordered ([`from_report`], pure), then stored and delivered to its peers.

use std::net::SocketAddr;

use hearth_control::wire::EndpointReport;

use crate::error::{Error, Result};

/// Most local endpoints one report may list.
pub const MAX_LOCAL: usize = 16;

/// The node's endpoints from its `report` and the address its report came
/// from (`observed`, with the node's WireGuard port): local ones first, then
/// the observed one, then what STUN saw; no duplicates, no port 0, no
/// unspecified address.
pub fn from_report(
    report: &EndpointReport,
    observed: Option<SocketAddr>,
) -> Result<Vec<SocketAddr>> {
    if report.local.len() > MAX_LOCAL {
        return Err(Error::BadRequest(format!(
            "at most {MAX_LOCAL} local endpoints"
        )));
    }
    let observed = observed.map(|address| SocketAddr::new(address.ip(), report.listen_port));
    let candidates = report
        .local
        .iter()
        .copied()
        .chain(observed)
        .chain(report.stun);
    Ok(usable(candidates, MAX_LOCAL + 2))
}

/// The first `limit` of `candidates` a peer can try, in order: no
/// duplicates, no port 0, no unspecified address.
pub fn usable(candidates: impl IntoIterator<Item = SocketAddr>, limit: usize) -> Vec<SocketAddr> {
    let mut endpoints = Vec::new();
    for candidate in candidates {
        if endpoints.len() == limit {
            break;
        }
        if candidate.port() != 0
            && !candidate.ip().is_unspecified()
            && !endpoints.contains(&candidate)
        {
            endpoints.push(candidate);
        }
    }
    endpoints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_come_in_order_without_duplicates() {
        let report = EndpointReport {
            listen_port: 41641,
            local: vec![
                "10.0.0.2:41641".parse().unwrap(),
                "0.0.0.0:41641".parse().unwrap(),
                "10.0.0.2:41641".parse().unwrap(),
                "10.0.0.3:0".parse().unwrap(),
            ],
            stun: Some("198.51.100.7:41641".parse().unwrap()),
            ..EndpointReport::default()
        };
        let found = from_report(&report, Some("198.51.100.7:5555".parse().unwrap())).unwrap();
        assert_eq!(
            found,
            [
                "10.0.0.2:41641".parse::<SocketAddr>().unwrap(),
                "198.51.100.7:41641".parse().unwrap()
            ]
        );
        let flood = EndpointReport {
            listen_port: 1,
            local: vec!["10.0.0.2:1".parse().unwrap(); MAX_LOCAL + 1],
            stun: None,
            ..EndpointReport::default()
        };
        assert!(from_report(&flood, None).is_err());
    }
}
