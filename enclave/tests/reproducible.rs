//! The compute image is reproducible: built once as every test builds it,
//! then again from a copy of the sources at another path into an empty
//! target directory (every dependency compiled anew, by
//! `podman/rebuild-elsewhere.sh`; scripts/test.sh starts it beside the
//! other tests, and this test waits for it), it is the same image
//! (the same image id, so the same bytes and the same measurements), so
//! anyone can rebuild it and compare with what the transparency log holds.
//! Real Podman, the musl target, the cached llama-server. Needs root and
//! podman; outside CI it skips without them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

use hearth_testkit::llama::{llama_server_binary, tiny_model, workspace_root};
use hearth_testkit::podman::{self, podman_ok};

fn image_id(reference: &str) -> String {
    podman_ok(&["image", "inspect", "--format", "{{.Id}}", reference])
        .trim()
        .to_owned()
}

/// Removes the rebuilt image's tag when dropped.
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = podman::podman().args(["untag", &self.0]).output();
    }
}

#[test]
fn the_compute_image_rebuilds_elsewhere_to_the_same_image() {
    if podman::available().is_none() {
        return;
    }
    let (Some(_), Some(model)) = (llama_server_binary(), tiny_model()) else {
        return;
    };
    podman::build_images_with(&["compute"], &[("HEARTH_COMPUTE_MODEL", &model)]);
    let first = image_id("localhost/hearth-compute:latest");

    // The same sources (what git tracks) at another path, compiled into an
    // empty target directory: by scripts/test.sh beside the other tests
    // (HEARTH_REBUILD_ELSEWHERE names where), else here.
    let scratch = tempfile::tempdir().unwrap();
    let elsewhere = match std::env::var_os("HEARTH_REBUILD_ELSEWHERE") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let dir = scratch.path().join("elsewhere");
            // Its outcome is in `done` and `build.log`, read below.
            let _ = Command::new(workspace_root().join("podman/rebuild-elsewhere.sh"))
                .arg(&dir)
                .status()
                .unwrap();
            dir
        }
    };
    hearth_testkit::wait_until(std::time::Duration::from_secs(45 * 60), || {
        elsewhere.join("done").exists()
    })
    .expect("the rebuild elsewhere ends");
    let built = std::fs::read_to_string(elsewhere.join("done")).unwrap();
    assert_eq!(
        built.trim(),
        "0",
        "the rebuild elsewhere failed:\n{}",
        std::fs::read_to_string(elsewhere.join("build.log")).unwrap_or_default()
    );
    let (sources, target) = (elsewhere.join("sources"), elsewhere.join("target"));
    let tag = format!("rebuild-{}", std::process::id());
    let _untag = Untag(format!("localhost/hearth-compute:{tag}"));
    let conf = std::env::var_os("CONTAINERS_CONF")
        .unwrap_or_else(|| workspace_root().join("podman/test/containers.conf").into());
    let output = Command::new(sources.join("podman/build-images.sh"))
        .arg("compute")
        .current_dir(&sources)
        .env("CARGO_TARGET_DIR", &target)
        .env("HEARTH_IMAGE_TAG", &tag)
        .env("HEARTH_COMPUTE_MODEL", &model)
        .env("CONTAINERS_CONF", conf)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the rebuild: {said}");
    let second = image_id(&format!("localhost/hearth-compute:{tag}"));
    assert_eq!(
        first,
        second,
        "the rebuild differs; its measurements: {}",
        said.lines()
            .filter(|line| line.contains("measurements"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        said.contains(&format!("image {first}")),
        "the build prints what it measured: {said}"
    );
}
