//! Where the OHTTP seeds come from: `OHTTP_SEEDS_JSON` in the environment,
//! or a file (0600) named on the command line. Never the command line
//! itself: seeds derive private keys.

use std::path::Path;

use anyhow::Context as _;
use hearth_ohttp::keys::{Seed, parse_seeds};

/// The environment variable holding the seeds JSON.
pub const SEEDS_ENV: &str = "OHTTP_SEEDS_JSON";

/// The seeds from `file` if given, else from [`SEEDS_ENV`], checked.
pub fn load(file: Option<&Path>) -> anyhow::Result<Vec<Seed>> {
    let text = match file {
        Some(path) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the seeds {}", path.display()))?,
            );
            let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(path)?);
            anyhow::ensure!(
                hearth_files::token::private_enough(mode),
                "{} is open to other users: the seeds derive private keys (chmod 600)",
                path.display()
            );
            text
        }
        None => zeroize::Zeroizing::new(
            std::env::var(SEEDS_ENV)
                .with_context(|| format!("give the seeds in {SEEDS_ENV} or with --seeds-file"))?,
        ),
    };
    parse_seeds(&text).map_err(anyhow::Error::msg)
}
