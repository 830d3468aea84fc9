//! Incremental evaluation of a compiled policy over a changing set of nodes.
//!
//! Nodes with the same identity (the same user, or the same tag set), the same
//! policy prefixes around their addresses and the same approved routes are
//! indistinguishable to the policy: they form one *class*. The engine keeps, per
//! class, its packet filter and the set of classes it may see, so that
//!
//! - a node joining an existing class costs a set insertion plus its peer list,
//! - a node founding a new class costs one pass over the rules (bitset unions),
//! - no operation ever compares all pairs of nodes.
//!
//! Peer visibility is symmetric: two nodes are peers when either may reach the
//! other.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ipnet::IpNet;

use crate::bitset::BitSet;
use crate::compiled::{CompiledPolicy, Principal, Rule};
use crate::filter::{CapabilityRule, Destination, Filter, FilterRule, Source, Target};
use crate::node::{NodeId, NodeIdentity};
use crate::principals::targets;

type ClassId = usize;

/// What the policy sees of a node besides its prefixes and routes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Owner {
    User(String),
    Tags(BTreeSet<String>),
}

/// Everything the policy can tell nodes apart by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClassKey {
    owner: Owner,
    /// Indices (into the policy's prefix list) of prefixes containing one of the node's addresses.
    prefix_hits: Vec<u32>,
    /// Approved routes, sorted.
    routes: Vec<IpNet>,
    /// Advertised routes other than exit routes, sorted (a subnet router may
    /// send from them, so a source prefix covering one names the router).
    advertised: Vec<IpNet>,
    /// The services hosted, sorted.
    services: Vec<crate::node::HostedService>,
}

#[derive(Debug)]
struct Class {
    key: ClassKey,
    members: BTreeSet<NodeId>,
    /// Classes whose members this class's members may see.
    visible: BitSet,
    filter: Arc<Filter>,
}

#[derive(Debug)]
struct Placement {
    class: ClassId,
    identity: NodeIdentity,
}

/// How one node's view changes after a policy change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    /// The node whose view changes.
    pub node: NodeId,
    /// Nodes that became its peers.
    pub peers_added: Vec<NodeId>,
    /// Nodes that stopped being its peers.
    pub peers_removed: Vec<NodeId>,
    /// Its new filter, when the filter changed.
    pub filter: Option<Arc<Filter>>,
}

/// How one node's own view changed after [`Engine::upsert`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Its new peers (each of which gains it).
    pub peers_added: Vec<NodeId>,
    /// Its lost peers (each of which loses it).
    pub peers_removed: Vec<NodeId>,
    /// Its new filter, when the filter changed.
    pub filter: Option<Arc<Filter>>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.peers_added.is_empty() && self.peers_removed.is_empty() && self.filter.is_none()
    }
}

/// The policy engine's state: a compiled policy applied to the current nodes.
#[derive(Debug)]
pub struct Engine {
    policy: Arc<CompiledPolicy>,
    prefix_index: HashMap<IpNet, u32>,
    nodes: HashMap<NodeId, Placement>,
    classes: Vec<Class>,
    index: HashMap<ClassKey, ClassId>,
    /// Per rule: the classes its sources name.
    rule_src: Vec<BitSet>,
    /// Per rule: the classes its destinations name (`autogroup:self` aside).
    rule_dst: Vec<BitSet>,
    /// Rules with an `autogroup:self` destination.
    self_rules: Vec<usize>,
    /// Untagged classes by user.
    user_classes: HashMap<String, BitSet>,
    /// Whether any rule steers routes (`via`).
    has_via: bool,
}

impl Engine {
    /// An engine for `policy` with no nodes yet.
    pub fn new(policy: Arc<CompiledPolicy>) -> Engine {
        let prefix_index = policy
            .prefixes()
            .into_iter()
            .enumerate()
            .map(|(index, prefix)| (prefix, index as u32))
            .collect();
        let self_rules = policy
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| {
                rule.dst
                    .iter()
                    .any(|destination| destination.principal == Principal::SelfDevices)
            })
            .map(|(index, _)| index)
            .collect();
        let rule_count = policy.rules.len();
        let policy_has_via = policy.rules.iter().any(|rule| !rule.via.is_empty());
        Engine {
            policy,
            prefix_index,
            nodes: HashMap::new(),
            classes: Vec::new(),
            index: HashMap::new(),
            rule_src: vec![BitSet::new(); rule_count],
            rule_dst: vec![BitSet::new(); rule_count],
            self_rules,
            user_classes: HashMap::new(),
            has_via: policy_has_via,
        }
    }

    /// The policy being evaluated.
    pub fn policy(&self) -> &Arc<CompiledPolicy> {
        &self.policy
    }

    /// Number of nodes known to the engine.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the engine knows no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of identity classes (for diagnostics and benchmarks).
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Whether `node` is known.
    pub fn contains(&self, node: NodeId) -> bool {
        self.nodes.contains_key(&node)
    }

    /// The identity last given for `node`.
    pub fn identity(&self, node: NodeId) -> Option<&NodeIdentity> {
        self.nodes.get(&node).map(|placement| &placement.identity)
    }

    /// The inbound filter `node` enforces.
    pub fn filter_of(&self, node: NodeId) -> Option<Arc<Filter>> {
        let placement = self.nodes.get(&node)?;
        Some(Arc::clone(&self.classes[placement.class].filter))
    }

    /// The nodes `node` may see, in increasing id order.
    pub fn peers_of(&self, node: NodeId) -> Vec<NodeId> {
        let Some(placement) = self.nodes.get(&node) else {
            return Vec::new();
        };
        let mut peers = self.seen_by_class(placement.class);
        peers.retain(|peer| *peer != node);
        peers
    }

    /// The class of `node` (valid until the engine next changes) and how
    /// many nodes are in it: every member of a class is told the same peers
    /// (each without itself) and enforces the same filter.
    pub fn class_of(&self, node: NodeId) -> Option<(usize, usize)> {
        let class = self.nodes.get(&node)?.class;
        Some((class, self.classes[class].members.len()))
    }

    /// Whether the policy steers any route (`via`).
    pub fn has_via(&self) -> bool {
        self.has_via
    }

    /// The approved subnet routes of `router` that `viewer` may send through
    /// it, when `via` decides it: a route that a `via` grant of the viewer's
    /// covers goes only to routers with one of the grant's tags. `None`:
    /// no `via` grant of the viewer's covers any of them (every route).
    pub fn steered_routes(&self, viewer: NodeId, router: &NodeIdentity) -> Option<Vec<IpNet>> {
        let class = self.nodes.get(&viewer)?.class;
        let steering: Vec<&crate::compiled::Rule> = self
            .policy
            .rules
            .iter()
            .enumerate()
            .filter(|(index, rule)| !rule.via.is_empty() && self.rule_src[*index].contains(class))
            .map(|(_, rule)| rule)
            .collect();
        if steering.is_empty() {
            return None;
        }
        let mut decided = false;
        let allowed = router
            .approved_routes
            .iter()
            .copied()
            .filter(|route| route.prefix_len() != 0)
            .filter(|route| {
                let covering: Vec<&&crate::compiled::Rule> = steering
                    .iter()
                    .filter(|rule| {
                        rule.dst
                            .iter()
                            .any(|destination| match &destination.principal {
                                Principal::Named(Source::Prefix(prefix)) => overlaps(prefix, route),
                                _ => false,
                            })
                    })
                    .collect();
                if covering.is_empty() {
                    return true;
                }
                decided = true;
                covering
                    .iter()
                    .any(|rule| rule.via.iter().any(|tag| router.tags.contains(tag)))
            })
            .collect();
        decided.then_some(allowed)
    }

    /// Whether `a` and `b` are peers of each other.
    pub fn are_peers(&self, a: NodeId, b: NodeId) -> bool {
        let (Some(left), Some(right)) = (self.nodes.get(&a), self.nodes.get(&b)) else {
            return false;
        };
        a != b && self.classes[left.class].visible.contains(right.class)
    }

    /// Adds nodes known to be new without reporting changes (start-up loading).
    pub fn load(&mut self, identities: impl IntoIterator<Item = NodeIdentity>) {
        for identity in identities {
            self.place(identity);
        }
    }

    /// Adds `identity`, or updates it if the node is known, and reports how
    /// the node's view changed. Peer visibility is symmetric: each node in
    /// `peers_added` gains this node as a peer, each in `peers_removed` loses it.
    ///
    /// A change that keeps the node in its class (a new endpoint, a rename)
    /// changes nobody's peer set or filter and returns an empty [`Change`].
    pub fn upsert(&mut self, identity: NodeIdentity) -> Change {
        let node = identity.id;
        let key = self.class_key(&identity);
        let previous = self.nodes.get(&node).map(|placement| placement.class);
        if let Some(class) = previous
            && self.classes[class].key == key
        {
            if let Some(placement) = self.nodes.get_mut(&node) {
                placement.identity = identity;
            }
            return Change::default();
        }

        let old_peers = self.peers_of(node);
        let old_filter = self.filter_of(node);
        if let Some(class) = previous {
            self.classes[class].members.remove(&node);
        }
        let class = self.class_for(key);
        self.classes[class].members.insert(node);
        self.nodes.insert(node, Placement { class, identity });

        let new_peers = self.peers_of(node);
        let new_filter = Arc::clone(&self.classes[class].filter);
        let (peers_added, peers_removed) = sorted_difference(&old_peers, &new_peers);
        let filter_changed = old_filter.as_deref() != Some(&*new_filter);
        Change {
            peers_added,
            peers_removed,
            filter: filter_changed.then_some(new_filter),
        }
    }

    /// Forgets `node`; returns its former peers, which lose it.
    pub fn remove(&mut self, node: NodeId) -> Vec<NodeId> {
        let peers = self.peers_of(node);
        let Some(placement) = self.nodes.remove(&node) else {
            return Vec::new();
        };
        self.classes[placement.class].members.remove(&node);
        peers
    }

    /// Replaces the policy and reports every node whose peers or filter changed.
    pub fn set_policy(&mut self, policy: Arc<CompiledPolicy>) -> Vec<NodeUpdate> {
        let mut next = Engine::new(policy);
        let mut identities: Vec<NodeIdentity> = self
            .nodes
            .values()
            .map(|placement| placement.identity.clone())
            .collect();
        identities.sort_by_key(|identity| identity.id);
        next.load(identities);

        // Nodes that share their old class and their new class see the same change.
        let mut groups: HashMap<(ClassId, ClassId), Vec<NodeId>> = HashMap::new();
        for (node, placement) in &self.nodes {
            let new_class = next.nodes[node].class;
            groups
                .entry((placement.class, new_class))
                .or_default()
                .push(*node);
        }
        let mut updates = Vec::new();
        for ((old_class, new_class), mut members) in groups {
            members.sort_unstable();
            let old_view = self.seen_by_class(old_class);
            let new_view = next.seen_by_class(new_class);
            let (added, removed) = sorted_difference(&old_view, &new_view);
            let old_filter = &self.classes[old_class].filter;
            let new_filter = &next.classes[new_class].filter;
            let filter = (old_filter != new_filter).then(|| Arc::clone(new_filter));
            for node in members {
                let update = NodeUpdate {
                    node,
                    peers_added: added.iter().copied().filter(|peer| *peer != node).collect(),
                    peers_removed: removed
                        .iter()
                        .copied()
                        .filter(|peer| *peer != node)
                        .collect(),
                    filter: filter.clone(),
                };
                if !update.peers_added.is_empty()
                    || !update.peers_removed.is_empty()
                    || update.filter.is_some()
                {
                    updates.push(update);
                }
            }
        }
        updates.sort_by_key(|update| update.node);
        *self = next;
        updates
    }

    /// Inserts a node known to be new, without computing anybody's change.
    fn place(&mut self, identity: NodeIdentity) {
        let key = self.class_key(&identity);
        let class = self.class_for(key);
        self.classes[class].members.insert(identity.id);
        self.nodes
            .insert(identity.id, Placement { class, identity });
    }

    /// Every node the members of `class` ([`Engine::class_of`]) may see, in
    /// increasing id order, its own members among them when it sees itself.
    pub fn seen_by_class(&self, class: ClassId) -> Vec<NodeId> {
        let mut view: Vec<NodeId> = self.classes[class]
            .visible
            .iter()
            .flat_map(|visible| self.classes[visible].members.iter().copied())
            .collect();
        view.sort_unstable();
        view
    }

    fn class_key(&self, identity: &NodeIdentity) -> ClassKey {
        let owner = if identity.is_tagged() {
            Owner::Tags(identity.tags.clone())
        } else {
            Owner::User(identity.user.clone())
        };
        let mut prefix_hits: Vec<u32> = self
            .prefix_index
            .iter()
            .filter(|(prefix, _)| {
                identity
                    .addresses
                    .iter()
                    .any(|address| prefix.contains(address))
            })
            .map(|(_, index)| *index)
            .collect();
        prefix_hits.sort_unstable();
        let mut routes = identity.approved_routes.clone();
        routes.sort();
        routes.dedup();
        let mut advertised: Vec<IpNet> = identity
            .advertised_routes
            .iter()
            .copied()
            .filter(|route| route.prefix_len() != 0)
            .collect();
        advertised.sort();
        advertised.dedup();
        let mut services = identity.services.clone();
        services.sort();
        services.dedup();
        ClassKey {
            owner,
            prefix_hits,
            routes,
            advertised,
            services,
        }
    }

    /// The class for `key`, founding it (and wiring its visibility) when new.
    fn class_for(&mut self, key: ClassKey) -> ClassId {
        if let Some(class) = self.index.get(&key) {
            return *class;
        }
        let class = self.classes.len();
        for (rule_index, rule) in self.policy.rules.iter().enumerate() {
            if rule
                .src
                .iter()
                .any(|source| self.naming_named(source, &key, Side::Source, rule) != Naming::No)
            {
                self.rule_src[rule_index].insert(class);
            }
            if rule
                .dst
                .iter()
                .any(|destination| self.naming(&destination.principal, &key, rule) != Naming::No)
            {
                self.rule_dst[rule_index].insert(class);
            }
        }
        if let Owner::User(user) = &key.owner {
            self.user_classes
                .entry(user.clone())
                .or_default()
                .insert(class);
        }
        let filter = Arc::new(self.filter_for(&key));
        self.classes.push(Class {
            key: key.clone(),
            members: BTreeSet::new(),
            visible: BitSet::new(),
            filter,
        });
        self.index.insert(key, class);

        let visible = self.visibility_of(class);
        for other in visible.iter().filter(|other| *other != class) {
            self.classes[other].visible.insert(class);
        }
        self.classes[class].visible = visible;
        class
    }

    /// The classes `class` may see, from the per-rule class sets.
    fn visibility_of(&self, class: ClassId) -> BitSet {
        let mut visible = BitSet::new();
        for (sources, destinations) in self.rule_src.iter().zip(&self.rule_dst) {
            if sources.contains(class) {
                visible.union_with(destinations);
            }
            if destinations.contains(class) {
                visible.union_with(sources);
            }
        }
        if let Owner::User(user) = &self.classes[class].key.owner
            && let Some(same_user) = self.user_classes.get(user)
        {
            for rule in &self.self_rules {
                let sources = &self.rule_src[*rule];
                if sources.contains(class) {
                    // Its devices reach all of the user's devices...
                    visible.union_with(same_user);
                } else {
                    // ...and are reached by those of the user's devices the rule names.
                    for other in same_user.iter().filter(|other| sources.contains(*other)) {
                        visible.insert(other);
                    }
                }
            }
        }
        visible
    }

    /// How a rule's destination `principal` names members of the class with
    /// `key`: by what they are, or as routers of what it names.
    fn naming(&self, principal: &Principal, key: &ClassKey, rule: &Rule) -> Naming {
        match principal {
            Principal::Named(source) => self.naming_named(source, key, Side::Destination, rule),
            Principal::Internet => {
                let exit = router_allowed(&rule.via, key)
                    && key.routes.iter().any(|route| route.prefix_len() == 0);
                if exit { Naming::Router } else { Naming::No }
            }
            // Handled per user in `visibility_of` and `filter_for`.
            Principal::SelfDevices => Naming::No,
            // A service is reached at its host, whoever that is now.
            Principal::Service(name) => {
                if key.services.iter().any(|hosted| hosted.name == *name) {
                    Naming::Itself
                } else {
                    Naming::No
                }
            }
        }
    }

    /// How `source` (a rule's source, or what a destination names as a
    /// source would) names members of the class with `key` on the given
    /// side: by who they are, by their addresses, or as routers of them.
    fn naming_named(&self, source: &Source, key: &ClassKey, side: Side, rule: &Rule) -> Naming {
        let Source::Prefix(prefix) = source else {
            let named = match &key.owner {
                Owner::User(user) => source.names(user, &crate::filter::UNTAGGED),
                Owner::Tags(tags) => source.names("", tags),
            };
            return if named { Naming::Itself } else { Naming::No };
        };
        let address_hit = self
            .prefix_index
            .get(prefix)
            .is_some_and(|index| key.prefix_hits.contains(index));
        let routed = match side {
            // Traffic from inside an advertised subnet comes through its router.
            // (Tailscale counts advertised routes for `acls`,
            // approved ones for `grants`.)
            Side::Source if rule.grant => key
                .routes
                .iter()
                .any(|route| route.prefix_len() != 0 && overlaps(route, prefix)),
            Side::Source => key.advertised.iter().any(|route| overlaps(route, prefix)),
            // Traffic to an approved subnet goes to its router; an exit
            // node's default route only carries `autogroup:internet`.
            Side::Destination => {
                router_allowed(&rule.via, key)
                    && key
                        .routes
                        .iter()
                        .any(|route| route.prefix_len() != 0 && overlaps(route, prefix))
            }
        };
        if address_hit {
            Naming::Itself
        } else if routed {
            Naming::Router
        } else {
            Naming::No
        }
    }

    /// The filter members of a class enforce.
    fn filter_for(&self, key: &ClassKey) -> Filter {
        let mut filter = Filter::default();
        for rule in &self.policy.rules {
            let mut destinations = Vec::new();
            let mut capability_targets = Vec::new();
            let mut self_ports = Vec::new();
            for destination in &rule.dst {
                if destination.principal == Principal::SelfDevices {
                    self_ports.extend(destination.ports.iter().copied());
                    continue;
                }
                let naming = self.naming(&destination.principal, key, rule);
                if naming == Naming::No {
                    continue;
                }
                if rule.is_capability() {
                    // Capabilities are granted at the node's own addresses,
                    // not at the routes it carries.
                    if naming == Naming::Itself {
                        capability_targets.push(Target::SelfAddresses);
                    }
                    continue;
                }
                let targets = match &destination.principal {
                    Principal::Service(name) => service_targets(key, name),
                    principal => targets(principal),
                };
                for target in targets {
                    for ports in &destination.ports {
                        destinations.push(Destination {
                            target: target.clone(),
                            ports: *ports,
                        });
                    }
                }
            }
            let sources = rule.src.clone();
            let own_user = match &key.owner {
                Owner::User(user)
                    if !self_ports.is_empty()
                        && rule
                            .src
                            .iter()
                            .any(|source| source.names(user, &crate::filter::UNTAGGED)) =>
                {
                    Some(user.clone())
                }
                _ => None,
            };
            if rule.is_capability() {
                capability_targets.dedup();
                if !capability_targets.is_empty() {
                    filter.capabilities.push(CapabilityRule {
                        src: sources,
                        dst: capability_targets,
                        capabilities: rule.capabilities.clone(),
                    });
                }
                if let Some(user) = own_user {
                    filter.capabilities.push(CapabilityRule {
                        src: vec![Source::User(user)],
                        dst: vec![Target::SelfAddresses],
                        capabilities: rule.capabilities.clone(),
                    });
                }
                continue;
            }
            if !destinations.is_empty() {
                filter.rules.push(FilterRule {
                    src: sources,
                    dst: dedup(destinations),
                    protocols: rule.protocols.clone(),
                });
            }
            if let Some(user) = own_user {
                filter.rules.push(FilterRule {
                    src: vec![Source::User(user)],
                    dst: dedup(
                        self_ports
                            .into_iter()
                            .map(|ports| Destination {
                                target: Target::SelfAddresses,
                                ports,
                            })
                            .collect(),
                    ),
                    protocols: rule.protocols.clone(),
                });
            }
        }
        filter
    }
}

/// A hosted service's addresses, as the targets of a rule naming it.
fn service_targets(key: &ClassKey, name: &str) -> Vec<Target> {
    key.services
        .iter()
        .filter(|hosted| hosted.name == name)
        .flat_map(|hosted| &hosted.addresses)
        .map(|address| Target::Prefix(IpNet::from(*address)))
        .collect()
}

/// How a destination principal names a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Naming {
    /// Not at all.
    No,
    /// By its identity or its own addresses.
    Itself,
    /// As the router of a subnet or the internet it names.
    Router,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// Whether a member of the class with `key` may carry a rule's routes: any
/// router when the rule names no `via` tags, else one carrying one of them.
fn router_allowed(via: &[String], key: &ClassKey) -> bool {
    via.is_empty()
        || matches!(&key.owner, Owner::Tags(tags) if via.iter().any(|tag| tags.contains(tag)))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn dedup(mut destinations: Vec<Destination>) -> Vec<Destination> {
    let mut seen = BTreeSet::new();
    destinations.retain(|destination| seen.insert(destination.clone()));
    destinations
}

/// `(new - old, old - new)` of two sorted, duplicate-free lists.
fn sorted_difference(old: &[NodeId], new: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.push(*a);
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.push(*b);
                j += 1;
            }
            (Some(a), None) => {
                removed.push(*a);
                i += 1;
            }
            (None, Some(b)) => {
                added.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (added, removed)
}
