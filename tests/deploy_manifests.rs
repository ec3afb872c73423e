//! The Kubernetes manifests in `deploy/k8s`: `kubectl kustomize` builds every overlay,
//! `kubernetes-validate --strict` (PyPI; ships the Kubernetes schemas) accepts every core
//! resource, including the sidecar containers inside the EMQX custom resource (validated
//! as the Pod they become), the mqscope sidecar's security context is non-root,
//! read-only, no privilege escalation, all capabilities dropped but NET_RAW, and its
//! `metrics` port is the one the PodMonitor scrapes and mqscope listens on. Also the
//! docker-compose demo: its files exist and its Prometheus config passes promtool.
//!
//! Needs `kubectl` (with its built-in kustomize), `kubernetes-validate` and python3 with
//! PyYAML (a dependency of kubernetes-validate) to read YAML.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &str, args: &[&str], hint: &str) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run ({e}): {hint}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// YAML (one or more documents) to JSON values, by PyYAML.
fn yaml_docs(yaml: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 missing");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 cannot read YAML: PyYAML comes with `pip install kubernetes-validate`"
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn overlays() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("deploy/k8s/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    for want in ["azure-managed-prometheus", "emqx", "mosquitto"] {
        assert!(v.iter().any(|o| o == want), "overlay {want} missing");
    }
    v
}

fn build(overlay: &str) -> Vec<Value> {
    let yaml = run(
        "kubectl",
        &["kustomize", &format!("deploy/k8s/overlays/{overlay}")],
        "install kubectl >= 1.21 (built-in kustomize v4+); Debian 12's kubernetes-client 1.20 is too old",
    );
    yaml_docs(&yaml)
}

/// Pod specs in a resource: workload templates, and the EMQX CR's core and replicant
/// templates assembled into the pod spec the operator creates from them.
fn pod_specs(doc: &Value) -> Vec<(String, Value, Value)> {
    let kind = doc["kind"].as_str().unwrap_or("");
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    match kind {
        "StatefulSet" | "Deployment" | "DaemonSet" => vec![(
            format!("{kind}/{name}"),
            doc["spec"]["template"]["metadata"]["labels"].clone(),
            doc["spec"]["template"]["spec"].clone(),
        )],
        "EMQX" => ["coreTemplate", "replicantTemplate"]
            .iter()
            .map(|t| {
                let tpl = &doc["spec"][t];
                let mut containers = vec![json!({"name": "emqx", "image": doc["spec"]["image"]})];
                containers.extend(
                    tpl["spec"]["extraContainers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .cloned(),
                );
                (
                    format!("EMQX/{name}/{t}"),
                    tpl["metadata"]["labels"].clone(),
                    json!({"containers": containers, "volumes": tpl["spec"]["extraVolumes"]}),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_core(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or("");
    let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

#[test]
fn every_overlay_builds_and_core_resources_validate() {
    let dir = std::env::temp_dir().join(format!("mqscope-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut expected = 0;
    for o in overlays() {
        let docs = build(&o);
        assert!(docs.len() >= 5, "{o}: only {} resources", docs.len());
        for (i, d) in docs.iter().enumerate() {
            let mut add = |v: &Value, tag: &str| {
                let f = dir.join(format!("{o}-{i}-{tag}.json"));
                std::fs::write(&f, serde_json::to_string(v).unwrap()).unwrap();
                files.push(f);
                expected += 1;
            };
            if is_core(d) {
                add(d, "core");
            }
            // The EMQX pods' containers are core Containers: validate them as a Pod.
            if d["kind"] == "EMQX" {
                for (n, (_, labels, spec)) in pod_specs(d).into_iter().enumerate() {
                    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("emqx-{n}"), "labels": labels}, "spec": spec});
                    add(&pod, &format!("emqx-pod{n}"));
                }
            }
        }
    }
    let mut args: Vec<String> = vec!["--strict".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = Command::new("kubernetes-validate")
        .args(&args)
        .output()
        .expect("kubernetes-validate missing: pip install kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate rejected:\n{text}"
    );
    assert_eq!(
        text.matches(" passed for resource ").count(),
        expected,
        "every core resource must be validated against a schema:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_sidecar(at: &str, c: &Value, problems: &mut Vec<String>) {
    let sc = &c["securityContext"];
    let mut need = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{at}: {what}"));
        }
    };
    need(sc["runAsNonRoot"] == true, "runAsNonRoot: true");
    need(
        sc["runAsUser"].as_u64().is_some_and(|u| u > 0),
        "runAsUser non-zero",
    );
    need(
        sc["readOnlyRootFilesystem"] == true,
        "readOnlyRootFilesystem: true",
    );
    need(
        sc["allowPrivilegeEscalation"] == false,
        "allowPrivilegeEscalation: false",
    );
    need(sc["privileged"] != true, "not privileged");
    need(
        sc["capabilities"]["drop"] == json!(["ALL"]),
        "capabilities.drop: [ALL]",
    );
    need(
        sc["capabilities"]["add"] == json!(["NET_RAW"]),
        "capabilities.add: [NET_RAW] only",
    );
    need(
        c["readinessProbe"].is_null(),
        "no readiness probe (it would gate the broker pod)",
    );
    let ports = c["ports"].as_array().cloned().unwrap_or_default();
    need(
        ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == 9883),
        "port 9883 named metrics",
    );
}

#[test]
fn sidecar_security_context_and_ports_match_the_podmonitor() {
    // mqscope's own listen address in the ConfigMap is the metrics port.
    let toml = std::fs::read_to_string(root().join("deploy/k8s/base/mqscope.toml")).unwrap();
    assert!(
        toml.contains("listen = \"0.0.0.0:9883\""),
        "mqscope must listen on 9883"
    );
    for o in overlays() {
        let docs = build(&o);
        let mut problems = Vec::new();
        let pms: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "PodMonitor").collect();
        assert_eq!(pms.len(), 1, "{o}: one PodMonitor");
        let pm = pms[0];
        let want_api = if o.contains("azure") {
            "azmonitoring.coreos.com/v1"
        } else {
            "monitoring.coreos.com/v1"
        };
        assert_eq!(pm["apiVersion"], want_api, "{o}");
        let endpoints = pm["spec"]["podMetricsEndpoints"].as_array().unwrap();
        let selector = pm["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let mut sidecars = 0;
        for d in &docs {
            for (at, labels, spec) in pod_specs(d) {
                let at = format!("{o}: {at}");
                for c in spec["containers"].as_array().unwrap() {
                    if c["name"] != "mqscope" {
                        continue;
                    }
                    sidecars += 1;
                    check_sidecar(&at, c, &mut problems);
                    for (k, v) in selector {
                        if &labels[k] != v {
                            problems
                                .push(format!("{at}: PodMonitor selector {k}={v} does not match"));
                        }
                    }
                    for ep in endpoints {
                        let p = ep["port"].as_str().unwrap_or("");
                        let named = c["ports"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x["name"] == p);
                        if !named || ep["path"] != "/metrics" {
                            problems.push(format!(
                                "{at}: PodMonitor port {p} / path {} not served",
                                ep["path"]
                            ));
                        }
                    }
                    // The config and the secret it names are mounted from volumes that exist.
                    // A StatefulSet's claim templates are volumes too.
                    let claims = d["spec"]["volumeClaimTemplates"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let vols: Vec<&str> = spec["volumes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v["name"].as_str().unwrap())
                        .chain(claims.iter().filter_map(|c| c["metadata"]["name"].as_str()))
                        .collect();
                    // The root filesystem is read-only: the spools, the firing-alert state
                    // and the baselines need a writable mount at their default place.
                    let state = c["volumeMounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["mountPath"] == "/var/lib/mqscope" && m["readOnly"] != true);
                    if !state {
                        problems.push(format!("{at}: no writable mount at /var/lib/mqscope"));
                    }
                    for m in c["volumeMounts"].as_array().unwrap() {
                        if !vols.contains(&m["name"].as_str().unwrap()) {
                            problems.push(format!("{at}: mount {} has no volume", m["name"]));
                        }
                    }
                }
            }
        }
        let want = if o == "mosquitto" { 1 } else { 2 };
        assert_eq!(sidecars, want, "{o}: sidecars (EMQX: core and replicant)");
        let np = docs
            .iter()
            .find(|d| d["kind"] == "NetworkPolicy")
            .expect("NetworkPolicy");
        let allows_metrics = np["spec"]["ingress"].as_array().unwrap().iter().any(|r| {
            r["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["port"] == "metrics")
        });
        assert!(allows_metrics, "{o}: NetworkPolicy must admit the scrape");
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn compose_demo_files_exist_and_prometheus_config_is_valid() {
    let compose = std::fs::read_to_string(root().join("deploy/docker-compose.yml")).unwrap();
    let doc = &yaml_docs(&compose)[0];
    for s in [
        "mosquitto",
        "mqscope",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(doc["services"][s].is_object(), "service {s} missing");
    }
    let mq = &doc["services"]["mqscope"];
    assert_eq!(
        mq["network_mode"], "service:mosquitto",
        "sidecar: broker's netns"
    );
    assert_eq!(mq["cap_drop"], json!(["ALL"]));
    assert_eq!(mq["cap_add"], json!(["NET_RAW"]));
    assert_eq!(mq["read_only"], true);
    for (name, svc) in doc["services"].as_object().unwrap() {
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let src = v.as_str().unwrap().split(':').next().unwrap();
            assert!(
                root().join("deploy").join(src).exists(),
                "{name}: volume source {src} missing"
            );
        }
    }
    // promtool on the compose Prometheus config, rule path pointed at the repository's.
    let dir = std::env::temp_dir().join(format!("mqscope-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = std::fs::read_to_string(root().join("deploy/compose/prometheus.yml"))
        .unwrap()
        .replace(
            "/etc/prometheus/rules/mqscope.rules.yml",
            &root().join("rules/mqscope.rules.yml").display().to_string(),
        );
    let f = dir.join("prometheus.yml");
    std::fs::write(&f, cfg).unwrap();
    run(
        "promtool",
        &["check", "config", f.to_str().unwrap()],
        "install the Debian package `prometheus`",
    );
    let _ = std::fs::remove_dir_all(&dir);
    // The image: multi-stage, non-root, capability on the binary, the metrics port.
    let df = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(df.matches("\nFROM ").count() >= 2, "multi-stage");
    assert!(df.contains("\nUSER 65532:65532"), "non-root runtime user");
    assert!(
        df.contains("setcap cap_net_raw+ep"),
        "NET_RAW on the binary"
    );
    assert!(df.contains("EXPOSE 9883"));
    assert!(Path::new(&root().join("deploy/Dockerfile.dockerignore")).exists());
}
