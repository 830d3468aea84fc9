//! The DNS the coordinator is an authority for, so that an ACME CA can
//! check DNS-01 challenges: the MagicDNS domain's zone (device
//! certificates, `_acme-challenge.<node>.<domain>`) and
//! `_acme-challenge.<the coordinator's own name>`. The household delegates
//! them to the coordinator at its DNS provider (an NS record).
//!
//! Only challenge TXT records are answered, and only while they are
//! wanted ([`CHALLENGE_LIFETIME`]); every other name in a zone gets an
//! empty answer with the zone's SOA (never NXDOMAIN: a resolver may take
//! that to mean nothing exists below the name), and names outside the
//! zones are refused. Device names and addresses are never published.
//!
//! Pure, and free of everything but `std` and `hearth_control::dns` (the
//! fuzzer includes this file by path).

use std::collections::HashMap;

use hearth_control::dns::{
    Data, NOERROR, QueryError, REFUSED, Record, Soa, TYPE_ANY, TYPE_NS, TYPE_SOA, TYPE_TXT,
    UDP_LIMIT, error_reply, fit, parse_query, reply,
};

/// The label a DNS-01 challenge's record is under (RFC 8555, 8.4).
pub const CHALLENGE_LABEL: &str = "_acme-challenge";
/// Seconds a challenge record may be cached.
pub const CHALLENGE_TTL: u32 = 60;
/// Seconds a challenge value is answered after it was set: a CA checks
/// within minutes.
pub const CHALLENGE_LIFETIME: i64 = 3600;
/// Values one name holds at once (a certificate's orders may overlap); a
/// further one replaces the oldest.
pub const MAX_VALUES: usize = 4;
/// Seconds a negative answer may be cached (the SOA's minimum).
const NEGATIVE_TTL: u32 = 60;

/// `_acme-challenge.<domain>`: where the challenge for `domain` is.
pub fn challenge_name(domain: &str) -> String {
    format!("{CHALLENGE_LABEL}.{domain}")
}

/// The zones answered, longest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    zones: Vec<String>,
    nameserver: String,
}

impl Authority {
    /// An authority for `zones` (lower case, no trailing dot), naming
    /// `nameserver` as their primary server.
    pub fn new(zones: Vec<String>, nameserver: &str) -> Authority {
        let mut zones = zones;
        zones.sort_by_key(|zone| std::cmp::Reverse(zone.len()));
        zones.dedup();
        Authority {
            zones,
            nameserver: nameserver.to_owned(),
        }
    }

    /// The zone `name` is in, if any.
    pub fn zone_of(&self, name: &str) -> Option<&str> {
        self.zones
            .iter()
            .find(|zone| {
                name == zone.as_str()
                    || name
                        .strip_suffix(zone.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .map(String::as_str)
    }

    fn soa(&self, zone: &str) -> Record {
        Record {
            owner: Some(zone.to_owned()),
            ttl: NEGATIVE_TTL,
            data: Data::Soa(Soa {
                primary: self.nameserver.clone(),
                mailbox: format!("hostmaster.{zone}"),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: NEGATIVE_TTL,
            }),
        }
    }
}

/// Challenge values by record name.
#[derive(Clone, Debug, Default)]
pub struct Challenges {
    by_name: HashMap<String, Vec<(String, i64)>>,
}

impl Challenges {
    /// Answers `value` for `name` (lower case) from `now` for
    /// [`CHALLENGE_LIFETIME`]; setting it again renews it.
    pub fn set(&mut self, name: &str, value: &str, now: i64) {
        self.forget_expired(now);
        let values = self.by_name.entry(name.to_owned()).or_default();
        values.retain(|(held, _)| held != value);
        if values.len() >= MAX_VALUES {
            values.remove(0);
        }
        values.push((value.to_owned(), now + CHALLENGE_LIFETIME));
    }

    /// Stops answering `value` for `name`.
    pub fn remove(&mut self, name: &str, value: &str) {
        if let Some(values) = self.by_name.get_mut(name) {
            values.retain(|(held, _)| held != value);
            if values.is_empty() {
                self.by_name.remove(name);
            }
        }
    }

    /// The values answered for `name` at `now`.
    pub fn values(&self, name: &str, now: i64) -> Vec<&str> {
        self.by_name.get(name).map_or_else(Vec::new, |values| {
            values
                .iter()
                .filter(|(_, until)| now < *until)
                .map(|(value, _)| value.as_str())
                .collect()
        })
    }

    fn forget_expired(&mut self, now: i64) {
        self.by_name.retain(|_, values| {
            values.retain(|(_, until)| now < *until);
            !values.is_empty()
        });
    }
}

/// Whether a reply goes back over UDP (cut to fit) or TCP (whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: at most 512 bytes, else truncated.
    Udp,
    /// TCP: whole.
    Tcp,
}

/// The reply to `packet` at `now`: `None` for what gets no reply (too
/// short to answer, or not a query).
pub fn handle(
    packet: &[u8],
    authority: &Authority,
    challenges: &Challenges,
    now: i64,
    transport: Transport,
) -> Option<Vec<u8>> {
    let query = match parse_query(packet) {
        Ok(query) => query,
        Err(QueryError::Refused { id, rcode, .. }) => return Some(error_reply(id, rcode)),
        Err(QueryError::Short | QueryError::NotQuery) => return None,
    };
    let Some(zone) = authority.zone_of(&query.name) else {
        // Not ours, and this server resolves nothing for anyone.
        return Some(reply(&query, REFUSED, false, &[], &[]));
    };
    let mut answers = Vec::new();
    if matches!(query.kind, TYPE_TXT | TYPE_ANY) {
        answers.extend(
            challenges
                .values(&query.name, now)
                .into_iter()
                .map(|value| Record::answer(CHALLENGE_TTL, Data::Txt(value.to_owned()))),
        );
    }
    if query.name == zone {
        let soa = authority.soa(zone);
        match query.kind {
            TYPE_SOA => answers.push(Record { owner: None, ..soa }),
            TYPE_NS => answers.push(Record::answer(3600, Data::Ns(authority.nameserver.clone()))),
            _ => {}
        }
    }
    let authority_section = if answers.is_empty() {
        vec![authority.soa(zone)]
    } else {
        Vec::new()
    };
    let packet = reply(&query, NOERROR, true, &answers, &authority_section);
    Some(match transport {
        Transport::Udp => fit(packet, query.question.len(), UDP_LIMIT),
        Transport::Tcp => packet,
    })
}

/// Why a client's `set-dns` request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetDnsRefusal {
    /// Only TXT records.
    NotTxt(String),
    /// A name that is not the challenge for the node's own name.
    NotOwnName {
        /// What was asked.
        asked: String,
        /// What the node may set.
        allowed: String,
    },
    /// A value that is no challenge value.
    BadValue,
    /// The device's name is one of the coordinator's.
    CoordinatorsName(String),
}

impl std::fmt::Display for SetDnsRefusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetDnsRefusal::NotTxt(kind) => {
                write!(formatter, "only TXT records can be set, not {kind:?}")
            }
            SetDnsRefusal::NotOwnName { asked, allowed } => write!(
                formatter,
                "a device sets only the challenge for its own name ({allowed}), not {asked:?}"
            ),
            SetDnsRefusal::BadValue => formatter.write_str(
                "the value is not an ACME challenge value (1 to 255 printable characters)",
            ),
            SetDnsRefusal::CoordinatorsName(name) => write!(
                formatter,
                "{name} is the coordinator's own name; no device gets a certificate for it"
            ),
        }
    }
}

/// Checks a client's `set-dns` request (`kind`, `name`, `value`) from the
/// node whose certificate name is `own_domain`: only the TXT record of the
/// challenge for its own name, and never for one of the coordinator's own
/// names (`coordinators`). The record's name (lower case, no trailing
/// dot) and value to set.
pub fn check_set_dns(
    kind: &str,
    name: &str,
    value: &str,
    own_domain: &str,
    coordinators: &[String],
) -> Result<(String, String), SetDnsRefusal> {
    if !kind.eq_ignore_ascii_case("TXT") {
        return Err(SetDnsRefusal::NotTxt(kind.chars().take(16).collect()));
    }
    let bare = |domain: &str| domain.trim_end_matches('.').to_ascii_lowercase();
    if coordinators
        .iter()
        .any(|kept| bare(kept) == bare(own_domain))
    {
        // A device that got (or was renamed to) one of the coordinator's
        // names must not get a certificate for it.
        return Err(SetDnsRefusal::CoordinatorsName(bare(own_domain)));
    }
    let allowed = challenge_name(own_domain);
    let asked = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if asked != allowed {
        return Err(SetDnsRefusal::NotOwnName {
            asked: name.chars().take(300).collect(),
            allowed,
        });
    }
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(SetDnsRefusal::BadValue);
    }
    Ok((asked, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_control::dns::{NXDOMAIN, TYPE_A, parse_reply};

    fn query(name: &str, kind: u16) -> Vec<u8> {
        hearth_control::dns::query(0xabcd, name, kind)
    }

    fn authority() -> Authority {
        Authority::new(
            vec!["ts.home.example".into(), challenge_name("hub.home.example")],
            "hub.home.example",
        )
    }

    fn ask(challenges: &Challenges, name: &str, kind: u16, now: i64) -> hearth_control::dns::Reply {
        let packet = handle(
            &query(name, kind),
            &authority(),
            challenges,
            now,
            Transport::Udp,
        )
        .unwrap();
        parse_reply(&packet).unwrap()
    }

    fn texts(reply: &hearth_control::dns::Reply) -> Vec<String> {
        reply
            .answers
            .iter()
            .filter_map(|(_, _, data)| match data {
                Data::Txt(text) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_challenge_is_answered_while_it_is_wanted_and_not_after() {
        let mut challenges = Challenges::default();
        let name = "_acme-challenge.laptop.ts.home.example";
        challenges.set(name, "abc", 100);
        let reply = ask(
            &challenges,
            "_acme-challenge.Laptop.ts.home.example",
            TYPE_TXT,
            101,
        );
        assert_eq!(reply.rcode, NOERROR);
        assert!(reply.authoritative);
        assert_eq!(texts(&reply), ["abc"]);
        let later = ask(&challenges, name, TYPE_TXT, 100 + CHALLENGE_LIFETIME);
        assert!(texts(&later).is_empty());
        assert!(matches!(later.authority[0].2, Data::Soa(_)));
        challenges.set(name, "def", 200);
        challenges.remove(name, "abc");
        assert_eq!(texts(&ask(&challenges, name, TYPE_TXT, 201)), ["def"]);
    }

    #[test]
    fn a_name_keeps_a_few_values_and_drops_the_oldest() {
        let mut challenges = Challenges::default();
        for index in 0..=MAX_VALUES {
            challenges.set("n", &format!("v{index}"), 0);
        }
        let values = challenges.values("n", 1);
        assert_eq!(values.len(), MAX_VALUES);
        assert!(!values.contains(&"v0"));
        challenges.set("n", "v1", 0);
        assert_eq!(challenges.values("n", 1).len(), MAX_VALUES, "no duplicates");
    }

    #[test]
    fn names_in_a_zone_are_empty_never_missing_and_others_are_refused() {
        let challenges = Challenges::default();
        // A device's own name is not published, but nor is it denied.
        let laptop = ask(&challenges, "laptop.ts.home.example", TYPE_A, 0);
        assert_eq!(laptop.rcode, NOERROR);
        assert!(laptop.answers.is_empty());
        assert_eq!(laptop.authority[0].0, "ts.home.example");
        assert_ne!(laptop.rcode, NXDOMAIN);
        // The coordinator's own challenge is its own zone.
        let own = ask(&challenges, "_acme-challenge.hub.home.example", TYPE_TXT, 0);
        assert_eq!(own.authority[0].0, "_acme-challenge.hub.home.example");
        // The apex has its SOA and NS.
        let soa = ask(&challenges, "ts.home.example", TYPE_SOA, 0);
        assert!(matches!(&soa.answers[0].2, Data::Soa(soa) if soa.primary == "hub.home.example"));
        let ns = ask(&challenges, "ts.home.example", TYPE_NS, 0);
        assert_eq!(ns.answers[0].2, Data::Ns("hub.home.example".into()));
        // Anything else: refused, not resolved.
        for name in [
            "example.com",
            "home.example",
            "hub.home.example",
            "xts.home.example",
        ] {
            let reply = ask(&challenges, name, TYPE_A, 0);
            assert_eq!(reply.rcode, REFUSED, "{name}");
            assert!(!reply.authoritative);
        }
    }

    #[test]
    fn what_is_not_a_query_gets_nothing_and_a_bad_query_an_error() {
        let challenges = Challenges::default();
        assert_eq!(
            handle(&[1, 2, 3], &authority(), &challenges, 0, Transport::Udp),
            None
        );
        let mut response = query("ts.home.example", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(
            handle(&response, &authority(), &challenges, 0, Transport::Udp),
            None
        );
        let mut compressed = query("ts.home.example", TYPE_A);
        compressed[12] = 0xc0;
        let error = handle(&compressed, &authority(), &challenges, 0, Transport::Udp).unwrap();
        assert_eq!(error[3] & 0xf, hearth_control::dns::FORMERR);
    }

    #[test]
    fn many_values_are_cut_for_udp_and_whole_over_tcp() {
        let authority = Authority::new(vec!["z.example".into()], "ns.z.example");
        let mut challenges = Challenges::default();
        for index in 0..MAX_VALUES {
            challenges.set("_acme-challenge.z.example", &"x".repeat(200 + index), 0);
        }
        let asked = query("_acme-challenge.z.example", TYPE_TXT);
        let udp = handle(&asked, &authority, &challenges, 1, Transport::Udp).unwrap();
        assert!(parse_reply(&udp).unwrap().truncated);
        let tcp = handle(&asked, &authority, &challenges, 1, Transport::Tcp).unwrap();
        assert_eq!(parse_reply(&tcp).unwrap().answers.len(), MAX_VALUES);
    }

    #[test]
    fn a_device_sets_only_its_own_challenge() {
        let own = "laptop.ts.home.example";
        let value = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert_eq!(
            check_set_dns(
                "TXT",
                "_acme-challenge.Laptop.ts.home.example.",
                value,
                own,
                &[]
            ),
            Ok((
                "_acme-challenge.laptop.ts.home.example".into(),
                value.into()
            ))
        );
        assert!(matches!(
            check_set_dns(
                "TXT",
                "_acme-challenge.phone.ts.home.example",
                value,
                own,
                &[]
            ),
            Err(SetDnsRefusal::NotOwnName { .. })
        ));
        assert!(matches!(
            check_set_dns("TXT", "_acme-challenge.hub.home.example", value, own, &[]),
            Err(SetDnsRefusal::NotOwnName { .. })
        ));
        assert!(matches!(
            check_set_dns("TXT", "laptop.ts.home.example", value, own, &[]),
            Err(SetDnsRefusal::NotOwnName { .. })
        ));
        assert!(matches!(
            check_set_dns(
                "A",
                "_acme-challenge.laptop.ts.home.example",
                "100.64.0.1",
                own,
                &[]
            ),
            Err(SetDnsRefusal::NotTxt(_))
        ));
        let kept = ["hub.ts.home.example".to_owned()];
        assert_eq!(
            check_set_dns(
                "TXT",
                "_acme-challenge.hub.ts.home.example",
                value,
                "hub.ts.home.example",
                &kept
            ),
            Err(SetDnsRefusal::CoordinatorsName(
                "hub.ts.home.example".into()
            )),
            "a device named as the coordinator"
        );
        for bad in ["", "has space", &"x".repeat(256), "tab\there"] {
            assert_eq!(
                check_set_dns(
                    "TXT",
                    "_acme-challenge.laptop.ts.home.example",
                    bad,
                    own,
                    &[]
                ),
                Err(SetDnsRefusal::BadValue)
            );
        }
    }
}
