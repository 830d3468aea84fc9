//! The compute image is reproducible: built once as every test builds it,
//! then again from a copy of the sources at another path into an empty
//! target directory (every dependency compiled anew), it is the same image
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

    // The same sources (what git tracks) at another path.
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("elsewhere");
    std::fs::create_dir_all(&sources).unwrap();
    let root = workspace_root();
    let tracked = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(tracked.status.success());
    for file in tracked
        .stdout
        .split(|byte| *byte == 0)
        .filter(|file| !file.is_empty())
    {
        let file = std::path::Path::new(std::str::from_utf8(file).unwrap());
        let to = sources.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(file), &to).unwrap();
    }
    let tag = format!("rebuild-{}", std::process::id());
    let _untag = Untag(format!("localhost/hearth-compute:{tag}"));
    let conf = std::env::var_os("CONTAINERS_CONF")
        .unwrap_or_else(|| root.join("podman/test/containers.conf").into());
    let output = Command::new(sources.join("podman/build-images.sh"))
        .arg("compute")
        .current_dir(&sources)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
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
