//! Subnet routes and exit nodes: which advertised routes a node may claim
//! and which of them are approved ([`check_advertised`], [`approved`],
//! pure), and the shell that records reports and admins' approvals.

use hearth_acl::Policy;
use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::ipam::mesh_prefixes;
use crate::netmap::NodeRecord;

/// Most routes one node may advertise.
pub const MAX_ROUTES: usize = 256;

/// The routes a node may advertise, normalized (host bits cleared, sorted,
/// de-duplicated). A route inside the mesh's own prefixes, or one holding
/// them that is not a default route, is refused: it would let the node send
/// with other members' addresses (the default routes of an exit node are
/// fine: a member's own address is a longer prefix and wins).
pub fn check_advertised(advertised: Vec<IpNet>) -> Result<Vec<IpNet>> {
    if advertised.len() > MAX_ROUTES {
        return Err(Error::BadRequest(format!("at most {MAX_ROUTES} routes")));
    }
    let mut routes: Vec<IpNet> = advertised.into_iter().map(|route| route.trunc()).collect();
    routes.sort();
    routes.dedup();
    for route in &routes {
        for mesh in mesh_prefixes() {
            let inside = mesh.contains(route);
            let holds = route.prefix_len() != 0 && route.contains(&mesh);
            if inside || holds {
                return Err(Error::BadRequest(format!(
                    "the route {route} overlaps the mesh's own addresses ({mesh}); a node may not route other members' addresses"
                )));
            }
        }
    }
    Ok(routes)
}

/// A node's approved routes: those of `chosen` it still advertises, plus
/// the advertised ones `auto` (the policy's `autoApprovers`) allows.
pub fn approved(record: &NodeRecord, chosen: &[IpNet], auto: &[IpNet]) -> Vec<IpNet> {
    let mut approved: Vec<IpNet> = record
        .advertised_routes
        .iter()
        .copied()
        .filter(|route| chosen.contains(route) || auto.contains(route))
        .collect();
    approved.sort();
    approved.dedup();
    approved
}

/// A node's approved routes under `policy`: [`approved`] with the routes
/// the policy's `autoApprovers` allow.
pub(crate) fn approved_under(
    policy: Option<&Policy>,
    record: &NodeRecord,
    chosen: &[IpNet],
) -> Vec<IpNet> {
    let automatic = policy
        .map(|policy| {
            policy.auto_approved_routes(&record.user, &record.tags, &record.advertised_routes)
        })
        .unwrap_or_default();
    approved(record, chosen, &automatic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn routes_are_normalized() {
        assert_eq!(
            check_advertised(nets(&["192.168.1.7/24", "10.0.0.0/8", "192.168.1.0/24"])).unwrap(),
            nets(&["10.0.0.0/8", "192.168.1.0/24"])
        );
    }

    #[test]
    fn routes_over_the_mesh_prefixes_are_refused() {
        for bad in [
            "100.64.0.0/24",
            "100.64.0.2/32",
            "100.64.0.0/10",
            "100.0.0.0/8",
            "fd7a:115c:a1e0::/48",
            "fd7a:115c:a1e0:ab12::/64",
            "fd00::/8",
        ] {
            let refused = check_advertised(nets(&[bad]));
            assert!(
                matches!(&refused, Err(Error::BadRequest(message)) if message.contains("overlaps")),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn exit_node_routes_and_neighbours_pass() {
        assert!(
            check_advertised(nets(&[
                "0.0.0.0/0",
                "::/0",
                "100.128.0.0/10",
                "192.168.0.0/16"
            ]))
            .is_ok()
        );
        assert!(check_advertised(nets(&["10.0.0.0/24"; MAX_ROUTES + 1])).is_err());
    }
}
