//! Evidence from a confidential VM's TEE through the kernel's
//! configfs-tsm interface (Linux 6.7 and later), the one interface for
//! AMD SEV-SNP (`sev_guest`) and Intel TDX (`tdx_guest`): make a report
//! directory under `/sys/kernel/config/tsm/report`, write 64 bytes of
//! report data to `inblob`, read the signed report (SEV-SNP) or quote
//! (TDX) from `outblob` and, for SEV-SNP, the host's certificate table
//! from `auxblob`; check `generation` to be sure no other writer raced.
//!
//! What is not in the guest comes from files the operator keeps current:
//! for SEV-SNP, the VCEK, ASK, ARK and AMD's CRL when the host hands none
//! (fetched from AMD's key distribution service); for TDX, the collateral
//! from Intel's provisioning service or a PCCS. docs/private-compute.md
//! says how. Not run here: no SEV-SNP or TDX guest is available to the
//! tests, so only the document assembly is tested.

use std::path::{Path, PathBuf};

use hearth_attest::snp::{HostCertificates, SnpDocument, certificate_table};
use hearth_attest::tdx::TdxDocument;

/// Where configfs-tsm's report directories are made.
pub const TSM_REPORTS: &str = "/sys/kernel/config/tsm/report";

/// The TEE behind configfs-tsm, as its `provider` file names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// AMD SEV-SNP (`sev_guest`).
    SevSnp,
    /// Intel TDX (`tdx_guest`).
    Tdx,
}

impl Provider {
    /// From the `provider` file's text.
    pub fn from_name(name: &str) -> Option<Provider> {
        match name.trim() {
            "sev_guest" => Some(Provider::SevSnp),
            "tdx_guest" => Some(Provider::Tdx),
            _ => None,
        }
    }
}

/// What one configfs-tsm request gave.
#[derive(Clone, Debug)]
pub struct TsmOutput {
    /// The TEE.
    pub provider: Provider,
    /// The signed report (SEV-SNP) or quote (TDX).
    pub outblob: Vec<u8>,
    /// SEV-SNP's certificate table from the host, when it gave one.
    pub auxblob: Option<Vec<u8>>,
}

/// Why configfs-tsm gave no evidence.
#[derive(Debug, thiserror::Error)]
pub enum TsmError {
    /// No configfs-tsm here.
    #[error(
        "{0} is not there: not a confidential VM with configfs-tsm (Linux 6.7+, configfs mounted)"
    )]
    Absent(PathBuf),
    /// A file could not be read or written.
    #[error("configfs-tsm {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The provider is not one Hearth knows.
    #[error("configfs-tsm's provider is {0:?}, not sev_guest or tdx_guest")]
    Provider(String),
    /// Another writer changed the request while it was read.
    #[error("another program used the same configfs-tsm report at once; ask again")]
    Raced,
    /// The pieces do not make a document.
    #[error("{0}")]
    Document(String),
    /// The host's certificate table is not one.
    #[error("{0}")]
    CertificateTable(#[from] hearth_attest::snp::SnpError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TsmError + '_ {
    move |source| TsmError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Asks the TEE, through configfs-tsm at `root`, for a report binding
/// `report_data`.
pub fn request(root: &Path, report_data: &[u8; 64]) -> Result<TsmOutput, TsmError> {
    if !root.is_dir() {
        return Err(TsmError::Absent(root.to_owned()));
    }
    let dir = root.join(format!(
        "hearth-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    let result = read_report(&dir, report_data);
    let _ = std::fs::remove_dir(&dir);
    result
}

fn read_report(dir: &Path, report_data: &[u8; 64]) -> Result<TsmOutput, TsmError> {
    let file = |name: &str| dir.join(name);
    let generation = |path: &Path| -> Result<u64, TsmError> {
        std::fs::read_to_string(path)
            .map_err(io(path))?
            .trim()
            .parse()
            .map_err(|_| TsmError::Document(format!("{} is not a number", path.display())))
    };
    let before = generation(&file("generation"))?;
    std::fs::write(file("inblob"), report_data).map_err(io(&file("inblob")))?;
    let outblob = std::fs::read(file("outblob")).map_err(io(&file("outblob")))?;
    let auxblob = std::fs::read(file("auxblob"))
        .ok()
        .filter(|aux| !aux.is_empty());
    let name = std::fs::read_to_string(file("provider")).map_err(io(&file("provider")))?;
    let after = generation(&file("generation"))?;
    // Writing inblob moved the generation on by one; more means another
    // writer's report may be what was read.
    if after != before + 1 {
        return Err(TsmError::Raced);
    }
    let provider =
        Provider::from_name(&name).ok_or_else(|| TsmError::Provider(name.trim().to_owned()))?;
    Ok(TsmOutput {
        provider,
        outblob,
        auxblob,
    })
}

/// Files the operator keeps for SEV-SNP, read when the host hands no
/// certificates: `vcek.der`, `ask.der`, `ark.der`, and `crl.der` (AMD's
/// CRL, optional).
pub fn certificates_from(dir: &Path) -> Result<(HostCertificates, Option<Vec<u8>>), TsmError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(io(&path))
    };
    let certificates = HostCertificates {
        vcek: Some(read("vcek.der")?),
        ask: Some(read("ask.der")?),
        ark: Some(read("ark.der")?),
    };
    let crl = std::fs::read(dir.join("crl.der")).ok();
    Ok((certificates, crl))
}

/// The SEV-SNP document for a report issued at `issued_at`: the host's
/// certificates where it gave them, else `kept` (the operator's files).
pub fn snp_document(
    output: &TsmOutput,
    issued_at: u64,
    kept: Option<(HostCertificates, Option<Vec<u8>>)>,
) -> Result<SnpDocument, TsmError> {
    let from_host = match &output.auxblob {
        Some(table) => certificate_table(table)?,
        None => HostCertificates::default(),
    };
    let (kept, crl) = kept.unwrap_or_default();
    let pick = |host: &Option<Vec<u8>>, kept: &Option<Vec<u8>>, name: &str| {
        host.clone().or_else(|| kept.clone()).ok_or_else(|| {
            TsmError::Document(format!(
                "no {name}: the host gives none; keep AMD's in the --snp-certificates directory"
            ))
        })
    };
    Ok(SnpDocument {
        report: output.outblob.clone(),
        vcek: pick(&from_host.vcek, &kept.vcek, "VCEK")?,
        ask: pick(&from_host.ask, &kept.ask, "ASK")?,
        ark: pick(&from_host.ark, &kept.ark, "ARK")?,
        crl,
        issued_at,
    })
}

/// The TDX document for a quote issued at `issued_at`, with the
/// collateral the operator keeps in `collateral`.
pub fn tdx_document(
    output: &TsmOutput,
    issued_at: u64,
    collateral: &Path,
) -> Result<TdxDocument, TsmError> {
    let collateral = std::fs::read_to_string(collateral).map_err(io(collateral))?;
    Ok(TdxDocument {
        quote: output.outblob.clone(),
        collateral,
        issued_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_attest::snp::{CERTIFICATE_GUIDS, write_certificate_table};

    fn snp_output(auxblob: Option<Vec<u8>>) -> TsmOutput {
        TsmOutput {
            provider: Provider::SevSnp,
            outblob: vec![7; 1184],
            auxblob,
        }
    }

    #[test]
    fn an_snp_document_takes_the_hosts_certificates_then_the_operators() {
        let [vcek, ask, ark] = CERTIFICATE_GUIDS;
        let table = write_certificate_table(&[
            (vcek, b"host-vcek"),
            (ask, b"host-ask"),
            (ark, b"host-ark"),
        ]);
        let document = snp_document(&snp_output(Some(table)), 42, None).unwrap();
        assert_eq!(document.vcek, b"host-vcek");
        assert_eq!(document.issued_at, 42);
        assert_eq!(document.report, vec![7; 1184]);

        let kept = HostCertificates {
            vcek: Some(b"kept-vcek".to_vec()),
            ask: Some(b"kept-ask".to_vec()),
            ark: Some(b"kept-ark".to_vec()),
        };
        let partial = write_certificate_table(&[(vcek, b"host-vcek")]);
        let document = snp_document(
            &snp_output(Some(partial)),
            42,
            Some((kept, Some(b"crl".to_vec()))),
        )
        .unwrap();
        assert_eq!(document.vcek, b"host-vcek");
        assert_eq!(document.ask, b"kept-ask");
        assert_eq!(document.crl.as_deref(), Some(&b"crl"[..]));

        let missing = snp_document(&snp_output(None), 42, None).unwrap_err();
        assert!(missing.to_string().contains("no VCEK"), "{missing}");
    }

    #[test]
    fn configfs_tsm_absent_says_so() {
        let gone = Path::new("/nonexistent/tsm/report");
        assert!(matches!(request(gone, &[0; 64]), Err(TsmError::Absent(_))));
        assert_eq!(Provider::from_name("sev_guest\n"), Some(Provider::SevSnp));
        assert_eq!(Provider::from_name("tdx_guest"), Some(Provider::Tdx));
        assert_eq!(Provider::from_name("arm_cca_guest"), None);
    }
}
