//! Tailscale clients that come without a pre-auth key (a phone whose app
//! has no place to type one): the coordinator answers their registration
//! with a login URL, whose page tells the person which command an admin
//! runs (`hearth-coordinator nodes register --user USER CODE`); the
//! client's follow-up request is held until the admin has run it. The
//! bookkeeping is pure ([`Logins`], [`login_page`]); the use cases follow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hearth_control::tailcfg::{Hostinfo, MachineKey};
use hearth_control::wire::WireGuardKey;

use crate::error::{Error, Result};
use crate::tailscale::client_name;

/// How long a device waits for an admin before it must start over (seconds).
pub const LOGIN_WAIT: i64 = 30 * 60;
/// A waiting device that has not asked again for this long (seconds) has
/// gone away: a live one follows its login URL up at least every
/// [`FOLLOW_UP_HOLD`], so made-up logins that are not kept asking free
/// their slot within minutes, not after [`LOGIN_WAIT`].
pub const ABANDONED_AFTER: i64 = 5 * 60;
/// Devices waiting at once; more are told to try later.
pub const MAX_WAITING: usize = 256;
/// Devices waiting at once from one address: someone who can reach the
/// coordinator cannot take every slot with made-up machine keys.
pub const MAX_WAITING_PER_SOURCE: usize = 4;
/// Devices waiting at once from one network (an IPv4 /24, an IPv6 /56):
/// many addresses of one provider count together.
pub const MAX_WAITING_PER_NETWORK: usize = 16;
/// How long a client's follow-up request is held before it is answered
/// with the same URL (it then asks again).
pub const FOLLOW_UP_HOLD: Duration = Duration::from_secs(120);
/// The path of login pages, before the code.
pub const LOGIN_PATH: &str = "/register/";

/// A device waiting for an admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingLogin {
    /// Its machine key.
    pub machine: MachineKey,
    /// The node key it asked to register.
    pub node_key: WireGuardKey,
    /// What it told about itself.
    pub hostinfo: Hostinfo,
    /// It asked to be removed when it goes away.
    pub ephemeral: bool,
    /// When it first asked (Unix seconds).
    pub since: i64,
    /// When it last asked (Unix seconds).
    pub last_asked: i64,
    /// The address it asked from.
    pub source: Option<IpAddr>,
}

/// Devices waiting for an admin, by login code.
#[derive(Debug, Default)]
pub struct Logins {
    waiting: HashMap<String, WaitingLogin>,
}

/// The network `address` belongs to, for counting waiting devices: its
/// /24 (IPv4) or /56 (IPv6).
fn network_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[7..].fill(0);
            IpAddr::from(octets)
        }
    }
}

/// What is kept of what a waiting device says about itself: its name, OS
/// and version, each bounded (the page shows them; nothing else is used).
fn kept(hostinfo: Hostinfo) -> Hostinfo {
    let bounded = |text: String, limit: usize| text.chars().take(limit).collect();
    Hostinfo {
        hostname: bounded(hostinfo.hostname, 255),
        os: bounded(hostinfo.os, 64),
        ipn_version: bounded(hostinfo.ipn_version, 64),
        ..Hostinfo::default()
    }
}

impl Logins {
    /// The code of `login`: the one it already has if its machine waits, or
    /// `fresh` as a new one. Expired and abandoned logins are forgotten
    /// first; past [`MAX_WAITING`] in all, [`MAX_WAITING_PER_SOURCE`] from
    /// its address or [`MAX_WAITING_PER_NETWORK`] from its network, a new
    /// device is refused.
    pub fn add(&mut self, mut login: WaitingLogin, fresh: String, now: i64) -> Result<String> {
        self.forget_old(now);
        login.hostinfo = kept(login.hostinfo);
        login.last_asked = now;
        if let Some((code, waiting)) = self
            .waiting
            .iter_mut()
            .find(|(_, waiting)| waiting.machine == login.machine)
        {
            waiting.node_key = login.node_key;
            waiting.hostinfo = login.hostinfo;
            waiting.ephemeral = login.ephemeral;
            waiting.last_asked = now;
            return Ok(code.clone());
        }
        if let Some(source) = login.source {
            let from_source = self
                .waiting
                .values()
                .filter(|waiting| waiting.source == Some(source))
                .count();
            if from_source >= MAX_WAITING_PER_SOURCE {
                return Err(Error::TooManyPending(format!(
                    "{MAX_WAITING_PER_SOURCE} devices from this address already wait for an admin; \
                     try again later"
                )));
            }
            let network = network_of(source);
            let from_network = self
                .waiting
                .values()
                .filter(|waiting| waiting.source.map(network_of) == Some(network))
                .count();
            if from_network >= MAX_WAITING_PER_NETWORK {
                return Err(Error::TooManyPending(format!(
                    "{MAX_WAITING_PER_NETWORK} devices from this network already wait for an admin; \
                     try again later"
                )));
            }
        }
        if self.waiting.len() >= MAX_WAITING {
            return Err(Error::TooManyPending(format!(
                "{MAX_WAITING} devices already wait for an admin; try again later"
            )));
        }
        self.waiting.insert(fresh.clone(), login);
        Ok(fresh)
    }

    fn forget_old(&mut self, now: i64) {
        self.waiting.retain(|_, waiting| live(waiting, now));
    }

    /// The device waiting with `code`, if it has not expired or gone away.
    pub fn get(&self, code: &str, now: i64) -> Option<&WaitingLogin> {
        self.waiting.get(code).filter(|waiting| live(waiting, now))
    }

    /// The device with `machine` key asked again (following its URL up) at
    /// `now`; whether it still waits.
    pub fn asked_again(&mut self, machine: &MachineKey, now: i64) -> bool {
        self.forget_old(now);
        match self
            .waiting
            .values_mut()
            .find(|waiting| waiting.machine == *machine)
        {
            Some(waiting) => {
                waiting.last_asked = now;
                true
            }
            None => false,
        }
    }

    /// Takes the device waiting with `code` out of the list.
    pub fn take(&mut self, code: &str, now: i64) -> Option<WaitingLogin> {
        let waiting = self.waiting.remove(code)?;
        live(&waiting, now).then_some(waiting)
    }
}

/// Whether `waiting` still waits at `now`: not expired, and asked again
/// recently enough.
fn live(waiting: &WaitingLogin, now: i64) -> bool {
    now - waiting.since < LOGIN_WAIT && now - waiting.last_asked < ABANDONED_AFTER
}

/// The login page form's field holding its token.
pub const FORM_TOKEN: &str = "csrf";

/// A new login code: 20 random bytes in hex.
pub fn new_code() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

/// The code at the end of a login URL, when it is one of ours.
pub fn code_of(url: &str) -> Option<&str> {
    let (_, code) = url.rsplit_once(LOGIN_PATH)?;
    is_code(code).then_some(code)
}

/// Whether `code` has the shape of a login code (40 hex digits): only such
/// a code is ever put into a header.
pub fn is_code(code: &str) -> bool {
    code.len() == 40 && code.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// `text` safe inside HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if crate::names::is_hidden_character(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// The page an official Tailscale app sends an admin to (`/admin`, and
/// `/admin/machines` when a device waits for approval): this network has
/// no admin console, so it says what to run on the hub.
pub fn admin_page() -> String {
    page(
        "approving devices",
        "<h1>Approving devices and adding people</h1>\n\
         <p>This Hearth network is run from its hub's command line (as root). \
         A device that waits for approval is listed as <code>pending</code>:</p>\n\
         <pre>hearth-coordinator nodes list\nhearth-coordinator nodes approve ID</pre>\n\
         <p>A new person, and a key for their devices that needs no approval \
         (valid 7 days, one device):</p>\n\
         <pre>hearth-coordinator users create NAME\n\
         hearth-coordinator preauthkeys create --user NAME --expiration 7d --pre-approved</pre>\n\
         <p>On a hub set up with <code>hearth setup</code> the same is \
         <code>hearth devices</code>, <code>hearth devices approve ID</code> and \
         <code>hearth members add NAME</code>; <code>hearth status</code> names the \
         devices that wait.</p>",
    )
}

/// The page a person sees at the login URL: which device waits, and how it
/// joins: signing in at the household's identity provider when there is
/// one (`sign_in`: the page's form token, also set in its cookie), else the
/// command an admin runs; `None` (the device is not waiting) gives the page
/// that says to start again. Signing in is a form this page sends, never a
/// link: a sign-in begun by opening a URL could be begun by any page that
/// sends a member's browser there, for a device that is not theirs.
pub fn login_page(waiting: Option<(&str, &WaitingLogin)>, sign_in: Option<&str>) -> String {
    let body = match (waiting, sign_in) {
        (Some((code, login)), Some(token)) => format!(
            "<h1>Add this device to your household network?</h1>\n\
             <p>Device: <code>{}</code> ({})</p>\n\
             <p>If this is your device, sign in with your household account and it joins \
             as yours.</p>\n\
             <form method=\"post\" action=\"{LOGIN_PATH}{code}/sign-in\">\
             <input type=\"hidden\" name=\"{FORM_TOKEN}\" value=\"{}\">\
             <button id=\"sign-in\" type=\"submit\">Sign in to add this device</button></form>\n\
             <p>If you did not just start adding this device, close this page.</p>",
            escape(&login.hostinfo.hostname),
            escape(&client_name(&login.hostinfo)),
            escape(token),
        ),
        (Some((code, login)), None) => format!(
            "<h1>This device is waiting to join</h1>\n\
             <p>Device: <code>{}</code> ({})</p>\n\
             <p>An admin of this Hearth network lets it in by running, on the coordinator:</p>\n\
             <pre>hearth-coordinator nodes register --user USER {code}</pre>\n\
             <p>with the name of the person whose device this is. The device joins as soon as \
             that has run; this page can be closed.</p>",
            escape(&login.hostinfo.hostname),
            escape(&client_name(&login.hostinfo)),
        ),
        (None, _) => "<h1>No device is waiting with this link</h1>\n\
                 <p>It may have expired (after 30 minutes). Start the login on the device again.</p>"
            .to_owned(),
    };
    page("joining a device", &body)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Hearth: {title}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_page_names_the_commands_that_approve_and_add() {
        let page = admin_page();
        assert!(page.contains("hearth-coordinator nodes approve ID"));
        assert!(page.contains("--pre-approved"));
        assert!(page.starts_with("<!doctype html>"));
    }

    fn login(machine: u8, since: i64) -> WaitingLogin {
        WaitingLogin {
            machine: MachineKey([machine; 32]),
            node_key: WireGuardKey([machine; 32]),
            hostinfo: Hostinfo {
                hostname: "phone".into(),
                ..Hostinfo::default()
            },
            ephemeral: false,
            since,
            last_asked: since,
            source: Some(IpAddr::from([10, machine, 0, 1])),
        }
    }

    #[test]
    fn a_machine_keeps_its_code_and_codes_expire() {
        let mut logins = Logins::default();
        let first = logins.add(login(1, 0), "a".repeat(40), 0).unwrap();
        let again = logins.add(login(1, 10), "b".repeat(40), 10).unwrap();
        assert_eq!(first, again, "asking again gives the same code");
        for at in (120..LOGIN_WAIT).step_by(120) {
            assert!(logins.asked_again(&MachineKey([1; 32]), at));
        }
        assert!(logins.get(&first, LOGIN_WAIT - 1).is_some());
        assert!(logins.get(&first, LOGIN_WAIT).is_none(), "expired");
        assert!(logins.take(&first, LOGIN_WAIT).is_none());
        let code = logins.add(login(2, 100), "c".repeat(40), 100).unwrap();
        assert_eq!(
            logins.take(&code, 101).unwrap().machine,
            MachineKey([2; 32])
        );
        assert!(logins.take(&code, 101).is_none(), "taken once");
    }

    #[test]
    fn waiting_devices_are_capped() {
        let mut logins = Logins::default();
        for index in 0..MAX_WAITING {
            let mut waiting = login(0, 0);
            let mut machine = [1u8; 32];
            machine[..2].copy_from_slice(&(index as u16).to_le_bytes());
            waiting.machine = MachineKey(machine);
            waiting.source = Some(IpAddr::from([10, (index >> 8) as u8, index as u8, 1]));
            logins.add(waiting, format!("{index:040}"), 0).unwrap();
        }
        assert!(matches!(
            logins.add(login(200, 0), "f".repeat(40), 0),
            Err(Error::TooManyPending(_))
        ));
        assert!(
            logins
                .add(login(200, ABANDONED_AFTER), "f".repeat(40), ABANDONED_AFTER)
                .is_ok(),
            "after the old ones stopped asking"
        );
    }

    #[test]
    fn a_login_kept_asking_for_waits_and_one_left_alone_goes() {
        let mut logins = Logins::default();
        let kept = logins.add(login(1, 0), "a".repeat(40), 0).unwrap();
        let left = logins.add(login(2, 0), "b".repeat(40), 0).unwrap();
        // Device 1 follows its URL up every two minutes; device 2 never does.
        for minute in (2..30).step_by(2) {
            assert!(logins.asked_again(&MachineKey([1; 32]), minute * 60));
        }
        assert!(logins.get(&kept, 29 * 60).is_some());
        assert!(logins.get(&left, ABANDONED_AFTER).is_none(), "abandoned");
        assert!(!logins.asked_again(&MachineKey([2; 32]), ABANDONED_AFTER));
        assert!(
            logins.get(&kept, LOGIN_WAIT).is_none(),
            "still expires after the whole wait"
        );
    }

    #[test]
    fn one_network_holds_few_slots_and_what_is_kept_is_bounded() {
        let mut logins = Logins::default();
        let mut taken = 0;
        for host in 1..=40u8 {
            let mut waiting = login(host, 0);
            waiting.source = Some(IpAddr::from([203, 0, 113, host]));
            waiting.hostinfo.hostname = "x".repeat(10_000);
            if logins.add(waiting, format!("{host:040}"), 0).is_ok() {
                taken += 1;
            }
        }
        assert_eq!(taken, MAX_WAITING_PER_NETWORK);
        assert!(
            logins
                .waiting
                .values()
                .all(|waiting| waiting.hostinfo.hostname.len() == 255)
        );
        let mut elsewhere = login(99, 0);
        elsewhere.source = Some(IpAddr::from([198, 51, 100, 1]));
        assert!(logins.add(elsewhere, "e".repeat(40), 0).is_ok());
        assert_eq!(
            network_of("2001:db8:1:2ff:1::7".parse().unwrap()),
            "2001:db8:1:200::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn one_address_holds_few_slots() {
        let mut logins = Logins::default();
        let mut from = |machine: u8, source: [u8; 4]| {
            let mut waiting = login(machine, 0);
            waiting.source = Some(IpAddr::from(source));
            logins.add(waiting, format!("{machine:040}"), 0)
        };
        for machine in 0..MAX_WAITING_PER_SOURCE as u8 {
            assert!(from(machine, [192, 0, 2, 1]).is_ok());
        }
        assert!(matches!(
            from(50, [192, 0, 2, 1]),
            Err(Error::TooManyPending(_))
        ));
        assert!(
            from(0, [192, 0, 2, 1]).is_ok(),
            "a device asking again keeps its slot"
        );
        assert!(
            from(51, [192, 0, 2, 2]).is_ok(),
            "another address still gets one"
        );
    }

    #[test]
    fn codes_are_read_from_login_urls_only() {
        let code = new_code();
        assert_eq!(code.len(), 40);
        let url = format!("https://hub:8443{LOGIN_PATH}{code}");
        assert_eq!(code_of(&url), Some(code.as_str()));
        assert_eq!(code_of("https://hub:8443/register/short"), None);
        assert_eq!(code_of(""), None);
        assert!(is_code(&code));
        // What the login page puts in its cookie's path, never a header's
        // other attributes.
        assert!(!is_code(&format!("{}; Domain=evil", &code[..30])));
    }

    #[test]
    fn the_page_names_the_command_and_escapes_what_the_device_says() {
        let mut hostile = login(1, 0);
        hostile.hostinfo.hostname = "<script>alert(1)</script>".into();
        let page = login_page(Some(("abc", &hostile)), None);
        assert!(page.contains("hearth-coordinator nodes register --user USER abc"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(login_page(None, None).contains("No device is waiting"));
        let signing_in = login_page(Some(("abc", &hostile)), Some("t0ken"));
        assert!(signing_in.contains("<form method=\"post\" action=\"/register/abc/sign-in\">"));
        assert!(signing_in.contains("name=\"csrf\" value=\"t0ken\""));
        assert!(
            !signing_in.contains("href=\"/register/abc/sign-in\""),
            "no link begins it"
        );
        assert!(!signing_in.contains("nodes register"));
        assert!(!signing_in.contains("<script>"));
        hostile.hostinfo.hostname = "phone\u{202e}gnp.exe".into();
        let page = login_page(Some(("abc", &hostile)), None);
        assert!(
            page.contains("phonegnp.exe"),
            "no character turns the text around"
        );
    }
}
