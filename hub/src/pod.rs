//! The pod on this hub: the values `podman/hearth-pod.yaml`'s placeholders
//! take, and where they come from (the agent's mesh address, the sockets'
//! group, the images the package loaded, setup's admin).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, POD};

/// The images the installed package loaded (`images.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// The gateway's image reference.
    pub gateway: String,
    /// The messaging service's image reference.
    pub messaging: String,
    /// The hub's own image (`hearth`, the coordinator and the agent), for
    /// the hub in Podman alone; none in the Debian package's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
}

impl Default for Images {
    /// What `podman/build-images.sh` tags when no package is installed.
    fn default() -> Images {
        Images {
            gateway: "localhost/hearth-gateway:latest".into(),
            messaging: "localhost/hearth-messaging:latest".into(),
            hub: Some("localhost/hearth-hub:latest".into()),
        }
    }
}

/// Everything the pod's template needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The pod's name.
    pub pod: String,
    /// This hub's mesh address (the messaging port is published there).
    pub mesh_address: Ipv4Addr,
    /// The group that may use the model's and the agent's sockets.
    pub group: u32,
    /// The images.
    pub images: Images,
    /// The hub's first admin (an admin of the household's rooms).
    pub admin: String,
    /// The gateway's configuration folder.
    pub gateway_config: PathBuf,
    /// The messaging service's configuration folder.
    pub messaging_config: PathBuf,
    /// The assistant's persona files.
    pub workspace: PathBuf,
    /// The household's documents.
    pub documents: PathBuf,
    /// The model's socket's folder.
    pub inference: PathBuf,
    /// The agent's whois socket's folder.
    pub whois: PathBuf,
    /// The gateway's data folder.
    pub gateway_data: PathBuf,
    /// The messaging service's data folder.
    pub messaging_data: PathBuf,
    /// Whether members' apps reach the gateway: its ports (OpenAI's and
    /// Ollama's APIs) are published on the mesh address.
    pub apps: bool,
    /// The address of `svc:chat` while the hub hosts it: the messaging
    /// port is published there too.
    pub chat_address: Option<Ipv4Addr>,
    /// The address of `svc:assistant` while the hub hosts it: with `apps`,
    /// the gateway's ports are published there too.
    pub assistant_address: Option<Ipv4Addr>,
    /// The MagicDNS names members use for the hub and the services it
    /// hosts (`hub.<tailnet>`, `chat.<tailnet>`, `assistant.<tailnet>`):
    /// the gateway and messaging answer to them.
    pub allowed_hosts: Vec<String>,
}

impl Settings {
    /// The hub's own folders, with the given address, group, images and admin.
    pub fn for_hub(
        layout: &Layout,
        mesh_address: Ipv4Addr,
        group: u32,
        images: Images,
        admin: &str,
    ) -> Settings {
        Settings {
            pod: POD.into(),
            mesh_address,
            group,
            images,
            admin: admin.into(),
            gateway_config: layout.gateway_config(),
            messaging_config: layout.messaging_config(),
            workspace: layout.workspace(),
            documents: layout.documents(),
            inference: layout.inference_dir(),
            whois: layout.whois_dir(),
            gateway_data: layout.gateway_data(),
            messaging_data: layout.messaging_data(),
            apps: false,
            chat_address: None,
            assistant_address: None,
            allowed_hosts: Vec::new(),
        }
    }

    /// A hub's settings for tests and examples.
    #[cfg(test)]
    pub fn example() -> Settings {
        Settings::for_hub(
            &Layout::system(),
            Ipv4Addr::new(100, 64, 0, 1),
            996,
            Images {
                gateway: "localhost/hearth-gateway:0.1.0".into(),
                messaging: "localhost/hearth-messaging:0.1.0".into(),
                hub: None,
            },
            "ada",
        )
    }

    /// The template's switches (`# only with NAME` lines).
    pub fn switches(&self) -> BTreeMap<&'static str, bool> {
        BTreeMap::from([
            ("APPS", self.apps),
            ("CHAT_SERVICE", self.chat_address.is_some()),
            (
                "ASSISTANT_SERVICE",
                self.apps && self.assistant_address.is_some(),
            ),
        ])
    }

    /// The template's placeholders and their values.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        let path = |path: &PathBuf| path.display().to_string();
        BTreeMap::from([
            ("POD", self.pod.clone()),
            ("MESH_ADDRESS", self.mesh_address.to_string()),
            ("GROUP", self.group.to_string()),
            ("GATEWAY_IMAGE", self.images.gateway.clone()),
            ("MESSAGING_IMAGE", self.images.messaging.clone()),
            ("ADMIN", self.admin.clone()),
            ("GATEWAY_CONFIG", path(&self.gateway_config)),
            ("MESSAGING_CONFIG", path(&self.messaging_config)),
            ("WORKSPACE", path(&self.workspace)),
            ("DOCUMENTS", path(&self.documents)),
            ("INFERENCE", path(&self.inference)),
            ("WHOIS", path(&self.whois)),
            ("GATEWAY_DATA", path(&self.gateway_data)),
            ("MESSAGING_DATA", path(&self.messaging_data)),
            // Never empty (a value is required): localhost, always taken.
            (
                "ALLOWED_HOSTS",
                std::iter::once("localhost")
                    .chain(self.allowed_hosts.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ])
        .into_iter()
        .chain(
            self.chat_address
                .map(|address| ("CHAT_ADDRESS", address.to_string())),
        )
        .chain(
            self.assistant_address
                .filter(|_| self.apps)
                .map(|address| ("ASSISTANT_ADDRESS", address.to_string())),
        )
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_named_by_the_package_or_the_build() {
        let images: Images = serde_json::from_str(
            r#"{"gateway": "localhost/hearth-gateway:0.2.0", "messaging": "localhost/hearth-messaging:0.2.0"}"#,
        )
        .unwrap();
        assert_eq!(images.gateway, "localhost/hearth-gateway:0.2.0");
        assert_eq!(
            Images::default().messaging,
            "localhost/hearth-messaging:latest"
        );
    }

    fn hub_pod(llama: bool) -> HubPod {
        hub_pod_searching(llama, false)
    }

    fn hub_pod_searching(llama: bool, search: bool) -> HubPod {
        HubPod {
            pod: "hearth".into(),
            images: Images {
                hub: Some("localhost/hearth-hub:0.1.0-arm64".into()),
                ..Images::default()
            },
            admin: "ada".into(),
            url_port: 8443,
            http_port: Some(8080),
            endpoints: vec!["192.168.1.20:41641".parse().unwrap()],
            allowed_hosts: vec!["chat.hearth.internal".into()],
            llama,
            search,
        }
    }

    /// The containers of a rendered hub pod: each one's name and its lines
    /// (the kube file's containers are the items under `containers:`).
    fn containers(rendered: &str) -> Vec<(String, String)> {
        let listed = rendered
            .split_once("\n  containers:\n")
            .unwrap()
            .1
            .split_once("\n  volumes:\n")
            .unwrap()
            .0;
        listed
            .split("\n    - name: ")
            .map(|block| block.trim_start_matches("    - name: "))
            .map(|block| {
                let (name, rest) = block.split_once('\n').unwrap();
                (
                    name.split('#').next().unwrap().trim().to_owned(),
                    rest.to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_hub_pod_runs_llama_server_only_when_the_model_is_its() {
        let rendered = hub_pod(false).fill(HUB_POD_TEMPLATE).unwrap();
        let without = containers(&rendered);
        let names: Vec<&str> = without.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["coordinator", "agent", "gateway", "messaging"]);
        assert!(!rendered.contains("inference"), "{rendered}");
        // As Podman names them once played (the manager looks for them).
        assert_eq!(
            container_names(&rendered, "hth7"),
            [
                "hth7-coordinator",
                "hth7-agent",
                "hth7-gateway",
                "hth7-messaging"
            ]
        );

        let rendered = hub_pod(true).fill(HUB_POD_TEMPLATE).unwrap();
        let with = containers(&rendered);
        let names: Vec<&str> = with.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["coordinator", "agent", "llama", "gateway", "messaging"]
        );
        assert_eq!(container_names(&rendered, "hth7")[2], "hth7-llama");
        let (_, llama) = &with[2];
        // The hub's image, as `hearth service llama`, unprivileged and
        // read-only, on no port: the gateway reaches it on the socket
        // volume they share, read-only on its side.
        for line in [
            "image: \"localhost/hearth-hub:0.1.0-arm64\"",
            "args: [\"service\", \"llama\"]",
            "runAsUser: 65532",
            "runAsNonRoot: true",
            "allowPrivilegeEscalation: false",
            "readOnlyRootFilesystem: true",
            "drop: [\"ALL\"]",
            "- { name: llama, mountPath: /var/lib/hearth-llama, readOnly: true }",
            "- { name: inference, mountPath: /run/hearth-inference }",
        ] {
            assert!(llama.contains(line), "{line} in {llama}");
        }
        assert!(
            !llama.contains("add:") && !llama.contains("ports:"),
            "{llama}"
        );
        let (_, gateway) = &with[3];
        assert!(
            gateway.contains(
                "- { name: inference, mountPath: /run/hearth-inference, readOnly: true }"
            )
        );
        assert!(rendered.contains("claimName: \"hearth-inference\""));
        assert!(rendered.contains("claimName: \"hearth-llama\""));
        assert!(!messaging_reaches_the_sockets(&with[4].1));
    }

    fn messaging_reaches_the_sockets(messaging: &str) -> bool {
        messaging
            .contains("- { name: inference, mountPath: /run/hearth-inference, readOnly: true }")
    }

    /// The search model in the pod (the image carries it): its own
    /// container, as unprivileged as llama's, on the models' socket
    /// volume, which the gateway and messaging then reach read-only, with
    /// or without the chat model in the pod (an Ollama on the machine).
    #[test]
    fn the_hub_pod_runs_the_search_model_when_the_image_carries_it() {
        for llama in [false, true] {
            let rendered = hub_pod_searching(llama, true)
                .fill(HUB_POD_TEMPLATE)
                .unwrap();
            let listed = containers(&rendered);
            let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
            let expected: &[&str] = if llama {
                &[
                    "coordinator",
                    "agent",
                    "llama",
                    "embeddings",
                    "gateway",
                    "messaging",
                ]
            } else {
                &["coordinator", "agent", "embeddings", "gateway", "messaging"]
            };
            assert_eq!(names, expected);
            let of = |name: &str| &listed.iter().find(|(named, _)| named == name).unwrap().1;
            for line in [
                "args: [\"service\", \"embeddings\"]",
                "runAsNonRoot: true",
                "readOnlyRootFilesystem: true",
                "drop: [\"ALL\"]",
                "- { name: inference, mountPath: /run/hearth-inference }",
            ] {
                assert!(of("embeddings").contains(line), "{line}");
            }
            assert!(!of("embeddings").contains("ports:"));
            assert!(messaging_reaches_the_sockets(of("messaging")));
            assert!(messaging_reaches_the_sockets(of("gateway")));
            assert!(rendered.contains("claimName: \"hearth-inference\""));
            assert_eq!(rendered.contains("claimName: \"hearth-llama\""), llama);
        }
    }
}

/// What `hearth pod render` may be told instead of looking it up.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// The template [default: the package's].
    pub template: Option<PathBuf>,
    /// The pod's name.
    pub pod: Option<String>,
    /// The mesh address [default: the hub agent's].
    pub mesh_address: Option<Ipv4Addr>,
    /// The sockets' group, a name or an id [default: hearth-inference].
    pub group: Option<String>,
    /// The admin [default: setup's].
    pub admin: Option<String>,
    /// Whether members' apps reach the gateway [default: setup's answer;
    /// no with `admin` given].
    pub apps: Option<bool>,
    /// The gateway's image [default: images.json's].
    pub gateway_image: Option<String>,
    /// The messaging service's image [default: images.json's].
    pub messaging_image: Option<String>,
    /// Folders, each over the hub's own.
    pub gateway_config: Option<PathBuf>,
    /// See [`Settings::messaging_config`].
    pub messaging_config: Option<PathBuf>,
    /// See [`Settings::workspace`].
    pub workspace: Option<PathBuf>,
    /// See [`Settings::documents`].
    pub documents: Option<PathBuf>,
    /// See [`Settings::inference`].
    pub inference: Option<PathBuf>,
    /// See [`Settings::whois`].
    pub whois: Option<PathBuf>,
    /// See [`Settings::gateway_data`].
    pub gateway_data: Option<PathBuf>,
    /// See [`Settings::messaging_data`].
    pub messaging_data: Option<PathBuf>,
}

/// Fills the pod's template for this hub and writes it to `output`
/// (whole, 0644), waiting up to `wait` for the hub agent's address.
pub fn render_file(
    layout: &Layout,
    overrides: Overrides,
    output: &std::path::Path,
    wait: std::time::Duration,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // The agent's status: its address, and the services it hosts now
    // (none when told the address).
    let (mesh_address, status) = match overrides.mesh_address {
        Some(address) => (address, serde_json::Value::Null),
        None => {
            let status = crate::system::wait_for_agent(layout, wait)?;
            let address = crate::system::agent_address(&status).context("an address")?;
            (address, status)
        }
    };
    let hosted = |service| crate::system::hosted_address(&status, service);
    let group = match overrides.group {
        Some(group) => match group.parse() {
            Ok(id) => id,
            Err(_) => crate::system::group(layout, &group)?,
        },
        None => crate::system::group(layout, crate::layout::SOCKET_GROUP)?,
    };
    let images = match crate::system::read_optional(&layout.images_manifest())? {
        Some(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", layout.images_manifest().display()))?,
        None => Images::default(),
    };
    // Setup's answers, unless given (then nothing of this machine's is read).
    let (admin, apps) = match overrides.admin {
        Some(admin) => (admin, overrides.apps.unwrap_or(false)),
        None => {
            let answers = crate::record::read_record(layout)?
                .map(|record| record.answers)
                .context("no admin: run `hearth setup` first (or pass --admin)")?;
            (answers.admin, overrides.apps.unwrap_or(answers.apps))
        }
    };
    let mut settings = Settings::for_hub(layout, mesh_address, group, images, &admin);
    settings.apps = apps;
    settings.chat_address = hosted(crate::layout::CHAT_SERVICE);
    settings.assistant_address = hosted(crate::layout::ASSISTANT_SERVICE);
    settings.allowed_hosts = crate::system::magic_dns_names(&status);
    let replace = |slot: &mut PathBuf, value: Option<PathBuf>| {
        if let Some(value) = value {
            *slot = value;
        }
    };
    if let Some(pod) = overrides.pod {
        settings.pod = pod;
    }
    if let Some(image) = overrides.gateway_image {
        settings.images.gateway = image;
    }
    if let Some(image) = overrides.messaging_image {
        settings.images.messaging = image;
    }
    replace(&mut settings.gateway_config, overrides.gateway_config);
    replace(&mut settings.messaging_config, overrides.messaging_config);
    replace(&mut settings.workspace, overrides.workspace);
    replace(&mut settings.documents, overrides.documents);
    replace(&mut settings.inference, overrides.inference);
    replace(&mut settings.whois, overrides.whois);
    replace(&mut settings.gateway_data, overrides.gateway_data);
    replace(&mut settings.messaging_data, overrides.messaging_data);
    let template_path = overrides.template.unwrap_or_else(|| layout.pod_template());
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read the pod's template {}", template_path.display()))?;
    let template = crate::render::only_with(&template, &settings.switches());
    let filled = crate::render::pod(&template, &settings.values())?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::system::write_file(output, filled.as_bytes(), 0o644, crate::system::Owner::ROOT)
}

/// The images this hub uses: the package's `images.json` (the hub's image
/// carries one too), else what `podman/build-images.sh` tags.
pub fn images(layout: &Layout) -> anyhow::Result<Images> {
    use anyhow::Context as _;
    match crate::system::read_optional(&layout.images_manifest())? {
        Some(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", layout.images_manifest().display())),
        None => Ok(Images::default()),
    }
}

/// What the hub's pod in Podman alone (`podman/hearth-hub-pod.yaml`) is
/// filled in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubPod {
    /// The pod's name, which its volumes' names begin with.
    pub pod: String,
    /// The images.
    pub images: Images,
    /// The hub's first admin.
    pub admin: String,
    /// The machine's port for the coordinator's HTTPS (the setup URL's).
    pub url_port: u16,
    /// The machine's port for its plain HTTP, if any.
    pub http_port: Option<u16>,
    /// Where members' devices reach the agent beside its own addresses
    /// (the machine's address when setup's URL names it by number).
    pub endpoints: Vec<std::net::SocketAddr>,
    /// The names the gateway and messaging answer to.
    pub allowed_hosts: Vec<String>,
    /// Whether the model is llama-server in the pod (else a server on the
    /// machine).
    pub llama: bool,
    /// Whether the search model runs in the pod (the image carries it).
    pub search: bool,
}

impl HubPod {
    /// The template's switches.
    pub fn switches(&self) -> BTreeMap<&'static str, bool> {
        BTreeMap::from([
            ("HTTP", self.http_port.is_some()),
            ("ENDPOINTS", !self.endpoints.is_empty()),
            ("LLAMA", self.llama),
            ("SEARCH", self.search),
            // The models' sockets' volume, for either.
            ("INFERENCE", self.llama || self.search),
        ])
    }

    /// The template's placeholders and their values.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        let hub = self
            .images
            .hub
            .clone()
            .unwrap_or_else(|| "localhost/hearth-hub:latest".into());
        let mut values = BTreeMap::from([
            ("POD", self.pod.clone()),
            ("HUB_IMAGE", hub),
            ("GATEWAY_IMAGE", self.images.gateway.clone()),
            ("MESSAGING_IMAGE", self.images.messaging.clone()),
            ("ADMIN", self.admin.clone()),
            ("URL_PORT", self.url_port.to_string()),
            (
                "ALLOWED_HOSTS",
                std::iter::once("localhost")
                    .chain(self.allowed_hosts.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]);
        if let Some(port) = self.http_port {
            values.insert("HTTP_PORT", port.to_string());
        }
        if !self.endpoints.is_empty() {
            values.insert(
                "ENDPOINTS",
                self.endpoints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        values
    }

    /// The kube file, from `template`.
    pub fn fill(&self, template: &str) -> anyhow::Result<String> {
        let template = crate::render::only_with(template, &self.switches());
        Ok(crate::render::pod(&template, &self.values())?)
    }
}

/// The names of a rendered kube file's containers (the items under its
/// `containers:`), as Podman names them when it plays the file for pod
/// `pod`: `POD-NAME`.
pub fn container_names(kube: &str, pod: &str) -> Vec<String> {
    kube.lines()
        .skip_while(|line| line.trim_end() != "  containers:")
        .skip(1)
        .take_while(|line| line.trim().is_empty() || line.starts_with("   "))
        .filter_map(|line| line.strip_prefix("    - name: "))
        .map(|name| {
            let name = name.split('#').next().unwrap_or_default().trim();
            format!("{pod}-{}", name.trim_matches('"'))
        })
        .collect()
}

/// The template of the hub's pod in Podman alone (compiled in: the hub's
/// image is the program).
pub const HUB_POD_TEMPLATE: &str = include_str!("../../podman/hearth-hub-pod.yaml");

/// The hub's pod in Podman alone, named `pod`, for this hub as setup left
/// it: its answers, its images, the names its agent has (or will have).
pub fn render_hub(layout: &Layout, pod: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let answers = crate::record::read_record(layout)?
        .map(|record| record.answers)
        .context("this hub is not set up: run `hearth setup --podman` first")?;
    let endpoints = answers
        .url
        .host()
        .parse::<std::net::IpAddr>()
        .map(|address| vec![std::net::SocketAddr::new(address, 41641)])
        .unwrap_or_default();
    let status = crate::system::agent_status(layout).unwrap_or(serde_json::Value::Null);
    let mut allowed_hosts = crate::system::magic_dns_names(&status);
    if allowed_hosts.is_empty() {
        allowed_hosts = predicted_names(layout, &answers);
    }
    HubPod {
        pod: pod.into(),
        images: images(layout)?,
        admin: answers.admin.clone(),
        url_port: answers.url.port(),
        http_port: answers.http_port,
        endpoints,
        allowed_hosts,
        llama: answers.model.uses_llama_server(),
        search: layout.search_model().is_some(),
    }
    .fill(HUB_POD_TEMPLATE)
}

/// The names the hub and its services will have before its agent runs:
/// its host name and the services' labels under the MagicDNS domain the
/// coordinator's settings give (`HEARTH_BASE_DOMAIN`, else its default).
fn predicted_names(layout: &Layout, answers: &crate::answers::Answers) -> Vec<String> {
    let mut domain = "hearth.internal".to_owned();
    for file in [
        layout.setup_env(),
        layout.config_dir().join("coordinator.env"),
    ] {
        let text = crate::system::read_optional(&file)
            .ok()
            .flatten()
            .unwrap_or_default();
        for (key, value) in crate::launch::environment_file(&text).unwrap_or_default() {
            if key == "HEARTH_BASE_DOMAIN" && !value.is_empty() {
                domain = value;
            }
        }
    }
    std::iter::once(answers.hostname.as_str())
        .chain(
            crate::layout::hub_services(answers.apps)
                .into_iter()
                .map(hearth_acl_label),
        )
        .map(|label| format!("{label}.{domain}"))
        .collect()
}

/// `chat` for `svc:chat`.
fn hearth_acl_label(service: &str) -> &str {
    service.strip_prefix("svc:").unwrap_or(service)
}
