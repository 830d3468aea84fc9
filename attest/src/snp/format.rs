//! The SEV-SNP evidence document and what it carries: the attestation
//! report, the VCEK, ASK and ARK certificates, AMD's CRL and the host's
//! certificate table. Parsing only; the checks are in [`super::verify`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The size of an attestation report (versions 2 to 5).
pub const REPORT_LEN: usize = 0x4A0;
/// Where the signature starts; everything before it is signed.
const SIGNED_LEN: usize = 0x2A0;
/// The report's signature algorithm: ECDSA P-384 with SHA-384.
const ECDSA_P384_SHA384: u32 = 1;
/// Guest policy bit: the hypervisor may debug the guest (read its memory).
pub const POLICY_DEBUG: u64 = 1 << 19;
/// Largest document accepted.
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// Why SEV-SNP evidence, or the policy's SEV-SNP part, is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnpError {
    /// The document is larger than [`MAX_DOCUMENT`].
    #[error("{0} bytes, more than {MAX_DOCUMENT}")]
    TooLarge(usize),
    /// The document is not the CBOR map this module writes.
    #[error("not an SEV-SNP document: {0}")]
    NotDocument(String),
    /// The report is not [`REPORT_LEN`] bytes.
    #[error("a report is {REPORT_LEN} bytes, this one {0}")]
    ReportLength(usize),
    /// The report's version is not one this reads.
    #[error("report version {0} is not one of 2 to 5")]
    ReportVersion(u32),
    /// The report is signed with another algorithm.
    #[error("signature algorithm {0} is not ECDSA P-384 with SHA-384")]
    ReportAlgorithm(u32),
    /// A signature value has bytes beyond P-384's 48.
    #[error("a signature value is longer than P-384's")]
    OversizedSignature,
    /// The VCEK did not sign the report.
    #[error("the report's signature does not verify with the VCEK")]
    ReportSignature,
    /// A certificate is not DER X.509.
    #[error("the {what} does not parse: {problem}")]
    Certificate {
        /// Which certificate (VCEK, ASK, ARK).
        what: String,
        /// The parser's words.
        problem: String,
    },
    /// A certificate is followed by other bytes.
    #[error("the {0} has bytes after it")]
    TrailingBytes(String),
    /// A certificate names another issuer.
    #[error("{subject} is issued by {issuer}, not {expected}")]
    WrongIssuer {
        /// The certificate's common name.
        subject: String,
        /// The issuer it names.
        issuer: String,
        /// The issuer it was checked against.
        expected: String,
    },
    /// A certificate's signature by its issuer does not hold.
    #[error("{subject}'s signature by {issuer}: {problem}")]
    CertificateSignature {
        /// The certificate's common name.
        subject: String,
        /// The issuer's common name.
        issuer: String,
        /// Why.
        problem: Box<SnpError>,
    },
    /// A certificate is not valid at the time of the check.
    #[error("the {what} is not valid at {at}")]
    Expired {
        /// Which certificate.
        what: &'static str,
        /// The time of the check, RFC 3339.
        at: String,
    },
    /// The VCEK lacks a TCB extension.
    #[error("the VCEK names no {0} version")]
    VcekTcbMissing(&'static str),
    /// A signature algorithm other than RSASSA-PSS.
    #[error("algorithm {0} is not RSASSA-PSS")]
    NotPss(String),
    /// An RSASSA-PSS signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The CRL is not DER.
    #[error("the CRL does not parse: {0}")]
    CrlSyntax(String),
    /// The CRL is not the ARK's.
    #[error("the CRL is issued by {0}, not the ARK")]
    CrlIssuer(String),
    /// The CRL's signature does not hold.
    #[error("the CRL's signature: {0}")]
    CrlSignature(Box<SnpError>),
    /// The CRL begins after the time of the check.
    #[error("the CRL is from the future")]
    CrlFromTheFuture,
    /// The CRL's next update has passed.
    #[error("the CRL expired at {0}")]
    CrlExpired(String),
    /// The certificate table is not ended by an entry of zeros.
    #[error("the certificate table has no end entry")]
    TableUnended,
    /// A certificate table entry points outside the table.
    #[error("a certificate table entry points outside the table")]
    TableOutside,
    /// The report states another TCB than its VCEK certifies.
    #[error("the report states TCB ({reported}) but the VCEK is for ({certified})")]
    TcbMismatch {
        /// The report's.
        reported: Tcb,
        /// The VCEK's.
        certified: Tcb,
    },
    /// The VCEK names another chip than the report.
    #[error("the VCEK was made for another chip")]
    OtherChip,
    /// The TCB is older than the policy accepts.
    #[error("TCB ({reported}) is older than the policy's least ({minimum})")]
    TcbTooOld {
        /// The report's.
        reported: Tcb,
        /// The policy's least.
        minimum: Tcb,
    },
    /// No image of the policy has the report's measurement.
    #[error("measurement {0} is not one the policy trusts")]
    UntrustedMeasurement(String),
    /// A policy image's value is not usable.
    #[error("image `{image}`: {problem}")]
    Image {
        /// The image's name.
        image: String,
        /// What is wrong.
        problem: String,
    },
    /// A pinned ARK fingerprint is not 64 hex digits.
    #[error("ark_sha256: each entry is 64 hex digits")]
    ArkPin,
}

/// SHA-256 of the DER of AMD's root keys (ARK), one per product, as AMD's
/// key distribution service serves them (`/vcek/v1/<product>/cert_chain`).
pub const AMD_ARKS_SHA256: &[(&str, &str)] = &[
    (
        "Milan",
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    ),
    (
        "Genoa",
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    ),
    (
        "Turin",
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    ),
];

/// The evidence document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpDocument {
    /// The attestation report.
    #[serde(with = "crate::bytes::cbor_bytes")]
    pub report: Vec<u8>,
    /// The chip's VCEK (DER).
    #[serde(with = "crate::bytes::cbor_bytes")]
    pub vcek: Vec<u8>,
    /// AMD's signing key for the product (DER).
    #[serde(with = "crate::bytes::cbor_bytes")]
    pub ask: Vec<u8>,
    /// AMD's root key for the product (DER).
    #[serde(with = "crate::bytes::cbor_bytes")]
    pub ark: Vec<u8>,
    /// AMD's certificate revocation list for the product (DER).
    #[serde(
        default,
        with = "crate::bytes::cbor_bytes_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub crl: Option<Vec<u8>>,
    /// When the node asked for the report (Unix seconds).
    pub issued_at: u64,
}

impl SnpDocument {
    /// Reads a document.
    pub fn parse(bytes: &[u8]) -> Result<SnpDocument, SnpError> {
        if bytes.len() > MAX_DOCUMENT {
            return Err(SnpError::TooLarge(bytes.len()));
        }
        ciborium::de::from_reader(bytes).map_err(|error| SnpError::NotDocument(error.to_string()))
    }

    /// The document's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(self, &mut out).expect("a document serializes");
        out
    }
}

/// A platform's trusted computing base: the security version of each
/// firmware part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tcb {
    /// The boot loader.
    pub bootloader: u8,
    /// The PSP operating system.
    pub tee: u8,
    /// The SNP firmware.
    pub snp: u8,
    /// The CPU microcode.
    pub microcode: u8,
    /// The firmware's first stage (Turin and later).
    #[serde(default)]
    pub fmc: Option<u8>,
}

impl Tcb {
    /// Reads the 8-byte TCB version of a report: its layout differs on
    /// Turin (`turin`).
    pub fn decode(raw: [u8; 8], turin: bool) -> Tcb {
        if turin {
            Tcb {
                fmc: Some(raw[0]),
                bootloader: raw[1],
                tee: raw[2],
                snp: raw[3],
                microcode: raw[7],
            }
        } else {
            Tcb {
                fmc: None,
                bootloader: raw[0],
                tee: raw[1],
                snp: raw[6],
                microcode: raw[7],
            }
        }
    }

    /// Whether every part is at least `minimum`'s.
    pub fn at_least(&self, minimum: &Tcb) -> bool {
        self.bootloader >= minimum.bootloader
            && self.tee >= minimum.tee
            && self.snp >= minimum.snp
            && self.microcode >= minimum.microcode
            && minimum
                .fmc
                .is_none_or(|fmc| self.fmc.is_some_and(|own| own >= fmc))
    }
}

impl std::fmt::Display for Tcb {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(formatter, "fmc {fmc}, ")?;
        }
        write!(
            formatter,
            "boot loader {}, tee {}, snp {}, microcode {}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

/// What a report says, read at its fixed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpReport {
    /// The report format's version (2 to 5).
    pub version: u32,
    /// The guest's security version.
    pub guest_svn: u32,
    /// The guest policy the guest was launched with.
    pub policy: u64,
    /// The privilege level that asked for the report.
    pub vmpl: u32,
    /// The launch measurement of the guest.
    pub measurement: [u8; 48],
    /// What the guest asked to be bound (64 bytes).
    pub report_data: [u8; 64],
    /// What the host bound at launch.
    pub host_data: [u8; 32],
    /// The TCB the VCEK was derived for.
    pub reported_tcb: Tcb,
    /// The chip's id (zeros when the guest policy masks it).
    pub chip_id: [u8; 64],
    /// Whether the CPU is a Turin (family 0x1A) or later.
    pub turin: bool,
    signed: Vec<u8>,
    /// r and s, big-endian, 48 bytes each.
    signature: [u8; 96],
}

/// Reads a report.
pub fn parse_report(bytes: &[u8]) -> Result<SnpReport, SnpError> {
    if bytes.len() != REPORT_LEN {
        return Err(SnpError::ReportLength(bytes.len()));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = u32_at(0);
    if !(2..=5).contains(&version) {
        return Err(SnpError::ReportVersion(version));
    }
    let algorithm = u32_at(0x34);
    if algorithm != ECDSA_P384_SHA384 {
        return Err(SnpError::ReportAlgorithm(algorithm));
    }
    let array = |at: usize, len: usize| &bytes[at..at + len];
    // Version 3 and later name the CPU's family; Turin is 0x1A.
    let turin = version >= 3 && bytes[0x188] >= 0x1A;
    let mut signature = [0u8; 96];
    // r and s are 72 bytes little-endian each; P-384 uses the low 48.
    for (half, at) in [(0, 0x2A0), (48, 0x2E8)] {
        let little = &bytes[at..at + 72];
        if little[48..].iter().any(|byte| *byte != 0) {
            return Err(SnpError::OversizedSignature);
        }
        for index in 0..48 {
            signature[half + index] = little[47 - index];
        }
    }
    Ok(SnpReport {
        version,
        guest_svn: u32_at(4),
        policy: u64::from_le_bytes(array(8, 8).try_into().expect("8 bytes")),
        vmpl: u32_at(0x30),
        report_data: array(0x50, 64).try_into().expect("64 bytes"),
        measurement: array(0x90, 48).try_into().expect("48 bytes"),
        host_data: array(0xC0, 32).try_into().expect("32 bytes"),
        reported_tcb: Tcb::decode(array(0x180, 8).try_into().expect("8 bytes"), turin),
        chip_id: array(0x1A0, 64).try_into().expect("64 bytes"),
        turin,
        signed: bytes[..SIGNED_LEN].to_vec(),
        signature,
    })
}

impl SnpReport {
    /// Checks the report's signature with the VCEK's public key (an
    /// uncompressed P-384 point).
    pub fn verify_signature(&self, vcek_public_key: &[u8]) -> Result<(), SnpError> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            vcek_public_key,
        )
        .verify(&self.signed, &self.signature)
        .map_err(|_| SnpError::ReportSignature)
    }

    /// Whether the guest policy lets the hypervisor debug the guest.
    pub fn debug_allowed(&self) -> bool {
        self.policy & POLICY_DEBUG != 0
    }
}

/// The OID of RSASSA-PSS, AMD's signature algorithm for ARK, ASK and VCEK.
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
/// AMD's extensions of a VCEK.
const OID_BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";

/// A certificate parsed, and the facts the checks need.
pub struct Certificate<'a> {
    parsed: X509Certificate<'a>,
}

impl<'a> Certificate<'a> {
    /// Parses DER.
    pub fn parse(der: &'a [u8], what: &str) -> Result<Certificate<'a>, SnpError> {
        let (rest, parsed) =
            X509Certificate::from_der(der).map_err(|error| SnpError::Certificate {
                what: what.to_owned(),
                problem: error.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(SnpError::TrailingBytes(what.to_owned()));
        }
        Ok(Certificate { parsed })
    }

    /// Its subject's common name.
    pub fn common_name(&self) -> String {
        self.parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|name| name.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether it is valid at `now`.
    pub fn valid_at(&self, now: Duration) -> bool {
        let now = now.as_secs() as i64;
        let validity = self.parsed.validity();
        validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
    }

    /// Checks that `issuer` signed it with RSASSA-PSS (SHA-384) and that
    /// its issuer's name is `issuer`'s subject.
    pub fn signed_by(&self, issuer: &Certificate<'_>) -> Result<(), SnpError> {
        if self.parsed.issuer() != issuer.parsed.subject() {
            return Err(SnpError::WrongIssuer {
                subject: self.common_name(),
                issuer: self.parsed.issuer().to_string(),
                expected: issuer.common_name(),
            });
        }
        verify_pss(
            self.parsed.signature_algorithm.algorithm.to_id_string(),
            issuer,
            self.parsed.tbs_certificate.as_ref(),
            &self.parsed.signature_value.data,
        )
        .map_err(|why| SnpError::CertificateSignature {
            subject: self.common_name(),
            issuer: issuer.common_name(),
            problem: Box::new(why),
        })
    }

    /// Its serial number, big-endian.
    pub fn serial(&self) -> &[u8] {
        self.parsed.raw_serial()
    }

    /// Its public key's bytes (an EC point, or an RSA key in PKCS#1).
    pub fn public_key(&self) -> &[u8] {
        &self.parsed.public_key().subject_public_key.data
    }

    /// The INTEGER in extension `oid`, if present.
    fn extension_integer(&self, oid: &str) -> Option<u8> {
        let extension = self
            .parsed
            .extensions()
            .iter()
            .find(|extension| extension.oid.to_id_string() == oid)?;
        let (_, value) = x509_parser::der_parser::der::parse_der_integer(extension.value).ok()?;
        value
            .as_u32()
            .ok()
            .and_then(|value| u8::try_from(value).ok())
    }

    /// The VCEK's TCB, from its extensions.
    pub fn vcek_tcb(&self) -> Result<Tcb, SnpError> {
        let part = |oid: &str, name: &'static str| {
            self.extension_integer(oid)
                .ok_or(SnpError::VcekTcbMissing(name))
        };
        Ok(Tcb {
            bootloader: part(OID_BOOTLOADER, "boot loader")?,
            tee: part(OID_TEE, "tee")?,
            snp: part(OID_SNP, "snp")?,
            microcode: part(OID_MICROCODE, "microcode")?,
            fmc: self.extension_integer(OID_FMC),
        })
    }

    /// The chip id the VCEK was made for (its hwID extension).
    pub fn vcek_chip_id(&self) -> Option<Vec<u8>> {
        let extension = self
            .parsed
            .extensions()
            .iter()
            .find(|extension| extension.oid.to_id_string() == OID_HWID)?;
        let (_, value) =
            x509_parser::der_parser::der::parse_der_octetstring(extension.value).ok()?;
        value.as_slice().ok().map(<[u8]>::to_vec)
    }
}

/// Checks an RSASSA-PSS (SHA-384, salt 48) signature by `issuer`'s key.
fn verify_pss(
    algorithm: String,
    issuer: &Certificate<'_>,
    signed: &[u8],
    signature: &[u8],
) -> Result<(), SnpError> {
    if algorithm != RSASSA_PSS {
        return Err(SnpError::NotPss(algorithm));
    }
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PSS_2048_8192_SHA384,
        issuer.public_key(),
    )
    .verify(signed, signature)
    .map_err(|_| SnpError::BadSignature)
}

/// The revocation list's facts: who signed it, when it holds, which
/// serials it lists.
pub struct Revocations {
    /// Serial numbers revoked, big-endian.
    pub serials: Vec<Vec<u8>>,
}

/// Checks AMD's CRL `der`: signed by `ark`, current at `now`; its revoked
/// serials.
pub fn read_crl(der: &[u8], ark: &Certificate<'_>, now: Duration) -> Result<Revocations, SnpError> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|error| SnpError::CrlSyntax(error.to_string()))?;
    if crl.issuer() != ark.parsed.subject() {
        return Err(SnpError::CrlIssuer(crl.issuer().to_string()));
    }
    verify_pss(
        crl.signature_algorithm.algorithm.to_id_string(),
        ark,
        crl.tbs_cert_list.as_ref(),
        &crl.signature_value.data,
    )
    .map_err(|why| SnpError::CrlSignature(Box::new(why)))?;
    let now_seconds = now.as_secs() as i64;
    let this_update = crl.last_update().timestamp();
    if now_seconds < this_update {
        return Err(SnpError::CrlFromTheFuture);
    }
    match crl.next_update() {
        Some(next) if now_seconds > next.timestamp() => {
            return Err(SnpError::CrlExpired(crate::report::rfc3339(
                Duration::from_secs(next.timestamp().max(0) as u64),
            )));
        }
        _ => {}
    }
    Ok(Revocations {
        serials: crl
            .iter_revoked_certificates()
            .map(|revoked| revoked.raw_serial().to_vec())
            .collect(),
    })
}

/// The certificates a host hands a guest with its report (the extended
/// report's certificate table, configfs-tsm's `auxblob`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCertificates {
    /// The chip's VCEK (DER).
    pub vcek: Option<Vec<u8>>,
    /// The product's ASK (DER).
    pub ask: Option<Vec<u8>>,
    /// The product's ARK (DER).
    pub ark: Option<Vec<u8>>,
}

/// GUIDs of the certificate table's entries (RFC 4122 byte order, as
/// AMD's firmware ABI and the Linux kernel write them).
const GUID_VCEK: [u8; 16] = guid(0x63da758d, 0xe664, 0x4564, 0xadc5, 0xf4b93be8accd);
const GUID_ASK: [u8; 16] = guid(0x4ab7b379, 0xbbac, 0x4fe4, 0xa02f, 0x05aef327c782);
const GUID_ARK: [u8; 16] = guid(0xc0b406a4, 0xa803, 0x4952, 0x9743, 0x3fb6014cd0ae);

const fn guid(a: u32, b: u16, c: u16, d: u16, e: u64) -> [u8; 16] {
    let (a, b, c, d, e) = (
        a.to_be_bytes(),
        b.to_be_bytes(),
        c.to_be_bytes(),
        d.to_be_bytes(),
        e.to_be_bytes(),
    );
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], e[2], e[3], e[4], e[5], e[6],
        e[7],
    ]
}

/// Reads a certificate table: entries of a GUID, an offset and a length
/// (little-endian, from the table's start), ended by an entry of zeros.
/// Entries it does not know are skipped; a table that points outside
/// itself is refused.
pub fn certificate_table(table: &[u8]) -> Result<HostCertificates, SnpError> {
    let mut found = HostCertificates::default();
    let mut at = 0;
    loop {
        let entry = table.get(at..at + 24).ok_or(SnpError::TableUnended)?;
        if entry.iter().all(|byte| *byte == 0) {
            return Ok(found);
        }
        let offset = u32::from_le_bytes(entry[16..20].try_into().expect("4 bytes")) as usize;
        let length = u32::from_le_bytes(entry[20..24].try_into().expect("4 bytes")) as usize;
        let der = table
            .get(offset..offset.saturating_add(length))
            .ok_or(SnpError::TableOutside)?
            .to_vec();
        let slot = match <[u8; 16]>::try_from(&entry[..16]).expect("16 bytes") {
            GUID_VCEK => Some(&mut found.vcek),
            GUID_ASK => Some(&mut found.ask),
            GUID_ARK => Some(&mut found.ark),
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = Some(der);
        }
        at += 24;
    }
}

/// A certificate table holding `entries` (GUID, DER), as a host writes one.
pub fn write_certificate_table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * 24;
    let mut table = Vec::new();
    let mut offset = header;
    for (guid, der) in entries {
        table.extend_from_slice(guid);
        table.extend_from_slice(&(offset as u32).to_le_bytes());
        table.extend_from_slice(&(der.len() as u32).to_le_bytes());
        offset += der.len();
    }
    table.extend_from_slice(&[0; 24]);
    for (_, der) in entries {
        table.extend_from_slice(der);
    }
    table
}

/// The table's GUIDs for the VCEK, the ASK and the ARK.
pub const CERTIFICATE_GUIDS: [[u8; 16]; 3] = [GUID_VCEK, GUID_ASK, GUID_ARK];

/// Which product an ARK fingerprint belongs to, if it is one AMD's.
pub fn amd_product(ark_sha256: &str) -> Option<&'static str> {
    AMD_ARKS_SHA256
        .iter()
        .find(|(_, pinned)| pinned.eq_ignore_ascii_case(ark_sha256))
        .map(|(product, _)| *product)
}

/// SHA-256 of `der`, hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_table_reads_back_and_a_bad_one_is_refused() {
        let [vcek, ask, ark] = CERTIFICATE_GUIDS;
        let unknown = [9u8; 16];
        let table = write_certificate_table(&[
            (vcek, b"vcek-der"),
            (unknown, b"vlek"),
            (ask, b"ask-der"),
            (ark, b"ark-der"),
        ]);
        let read = certificate_table(&table).unwrap();
        assert_eq!(read.vcek.as_deref(), Some(&b"vcek-der"[..]));
        assert_eq!(read.ask.as_deref(), Some(&b"ask-der"[..]));
        assert_eq!(read.ark.as_deref(), Some(&b"ark-der"[..]));
        // The VCEK's GUID as AMD publishes it.
        assert_eq!(hex::encode(vcek), "63da758de6644564adc5f4b93be8accd");
        assert!(certificate_table(&table[..30]).is_err(), "no end entry");
        let mut outside = table.clone();
        outside[16] = 0xff;
        assert!(certificate_table(&outside).is_err());
        assert_eq!(
            certificate_table(&[0; 24]).unwrap(),
            HostCertificates::default()
        );
    }

    #[test]
    fn tcb_versions_read_by_generation() {
        let milan = Tcb::decode([3, 0, 0, 0, 0, 0, 8, 115], false);
        assert_eq!(
            (milan.bootloader, milan.tee, milan.snp, milan.microcode),
            (3, 0, 8, 115)
        );
        let turin = Tcb::decode([1, 2, 3, 4, 0, 0, 0, 9], true);
        assert_eq!(turin.fmc, Some(1));
        assert_eq!(
            (turin.bootloader, turin.tee, turin.snp, turin.microcode),
            (2, 3, 4, 9)
        );
        assert!(milan.at_least(&milan));
        assert!(!milan.at_least(&Tcb {
            microcode: 116,
            ..milan
        }));
        assert!(
            !milan.at_least(&Tcb {
                fmc: Some(0),
                ..milan
            }),
            "no FMC to compare"
        );
    }
}
