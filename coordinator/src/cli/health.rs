//! `hearth-coordinator health`: how the running coordinator is doing.

use std::path::Path;

use hearth_coordinator::state_dir::StateDir;

use super::admin_client::AdminClient;
use super::{Output, print_json};

/// Prints the running coordinator's health; exits 1 when it has problems.
pub async fn run(state_dir: &Path, output: Output) -> anyhow::Result<()> {
    let admin = || AdminClient::new(&StateDir::new(state_dir).admin_socket());

    let health = admin()?.health().await?;
    let now = hearth_runtime::clock::unix_seconds();
    match output {
        Output::Table => print!("{}", health.render_text(now)),
        Output::Json => {
            // What the text form lists first, for scripts (`hearth status`).
            let mut value = serde_json::to_value(&health)?;
            let (kinds, problems): (Vec<_>, Vec<_>) =
                health.problems_of_kind(now).into_iter().unzip();
            value["problems"] = serde_json::json!(problems);
            value["problem_kinds"] = serde_json::json!(kinds);
            print_json(&value)?;
        }
    }
    if !health.problems(now).is_empty() {
        std::process::exit(1);
    }

    Ok(())
}
