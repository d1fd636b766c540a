//! Which workload handled the request: resolved once per plugin start from Envoy's node metadata
//! (as istio-proxy writes it), with the plugin configuration's overrides first and `"unknown"`
//! last. Plain Envoy (no Istio metadata) falls back to `node.cluster` / `node.id`.

use crate::config::WorkloadOverrides;

pub const UNKNOWN: &str = "unknown";

/// The node metadata keys read (paths under Envoy's `xds.node` property).
pub mod keys {
    pub const LABELS: &str = "LABELS";
    pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
    pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";
    pub const K8S_NAME: &str = "app.kubernetes.io/name";
    pub const K8S_VERSION: &str = "app.kubernetes.io/version";
    pub const APP: &str = "app";
    pub const VERSION: &str = "version";
    pub const NAMESPACE: &str = "NAMESPACE";
    pub const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
    pub const CLUSTER_ID: &str = "CLUSTER_ID";
    pub const MESH_ID: &str = "MESH_ID";
    pub const POD_NAME: &str = "NAME";
    /// Written by every istio-proxy (pilot-agent's bootstrap).
    pub const ISTIO_VERSION: &str = "ISTIO_VERSION";
}

/// What the node says; each field `None` when absent or empty.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub label_canonical_name: Option<String>,
    pub label_canonical_revision: Option<String>,
    pub label_k8s_name: Option<String>,
    pub label_k8s_version: Option<String>,
    pub label_app: Option<String>,
    pub label_version: Option<String>,
    pub namespace: Option<String>,
    pub workload_name: Option<String>,
    pub cluster_id: Option<String>,
    pub mesh_id: Option<String>,
    pub pod_name: Option<String>,
    /// `node.cluster` (Envoy's `--service-cluster`).
    pub node_cluster: Option<String>,
    /// `node.id` (Envoy's `--service-node`).
    pub node_id: Option<String>,
    /// Present on an Istio proxy.
    pub istio_version: Option<String>,
}

impl NodeInfo {
    /// Reads the node through `get(path)`, a property lookup under `xds.node`.
    pub fn read(get: impl Fn(&[&str]) -> Option<String>) -> NodeInfo {
        use keys::*;
        let label = |k: &str| get(&["metadata", LABELS, k]);
        let meta = |k: &str| get(&["metadata", k]);
        NodeInfo {
            label_canonical_name: label(CANONICAL_NAME),
            label_canonical_revision: label(CANONICAL_REVISION),
            label_k8s_name: label(K8S_NAME),
            label_k8s_version: label(K8S_VERSION),
            label_app: label(APP),
            label_version: label(VERSION),
            namespace: meta(NAMESPACE),
            workload_name: meta(WORKLOAD_NAME),
            cluster_id: meta(CLUSTER_ID),
            mesh_id: meta(MESH_ID),
            pod_name: meta(POD_NAME),
            node_cluster: get(&["cluster"]),
            node_id: get(&["id"]),
            istio_version: meta(ISTIO_VERSION),
        }
        .without_empty()
    }

    /// Whether this Envoy is an Istio proxy (sidecar or gateway).
    pub fn is_istio(&self) -> bool {
        self.istio_version.is_some()
    }

    fn without_empty(mut self) -> NodeInfo {
        for f in [
            &mut self.label_canonical_name,
            &mut self.label_canonical_revision,
            &mut self.label_k8s_name,
            &mut self.label_k8s_version,
            &mut self.label_app,
            &mut self.label_version,
            &mut self.namespace,
            &mut self.workload_name,
            &mut self.cluster_id,
            &mut self.mesh_id,
            &mut self.pod_name,
            &mut self.node_cluster,
            &mut self.node_id,
            &mut self.istio_version,
        ] {
            if f.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *f = None;
            }
        }
        self
    }
}

/// The workload fields that tag spans: the tag name (on the filter's own spans), and the
/// filter-state key Envoy's tracing custom tags read for Envoy's spans
/// (`%FILTER_STATE(wasm.trace_inject.service:PLAIN)%`). The one table of span tags.
pub const SPAN_TAGS: [(&str, &str); 5] = [
    ("service", "trace_inject.service"),
    ("namespace", "trace_inject.namespace"),
    ("version", "trace_inject.version"),
    ("workload", "trace_inject.workload"),
    ("cluster", "trace_inject.cluster"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub service: String,
    pub namespace: String,
    pub version: String,
    pub workload: String,
    pub cluster: String,
    pub mesh: String,
    pub pod: String,
}

impl Workload {
    /// The resolution order documented in docs/attribution.md, field by field.
    pub fn resolve(node: &NodeInfo, overrides: &WorkloadOverrides) -> Workload {
        fn first(candidates: &[&Option<String>]) -> String {
            candidates
                .iter()
                .find_map(|c| c.as_deref())
                .unwrap_or(UNKNOWN)
                .to_string()
        }
        let o = overrides;
        Workload {
            service: first(&[
                &o.service,
                &node.label_canonical_name,
                &node.label_k8s_name,
                &node.label_app,
                &node.workload_name,
                &node.node_cluster,
            ]),
            namespace: first(&[&o.namespace, &node.namespace]),
            version: first(&[
                &o.version,
                &node.label_canonical_revision,
                &node.label_k8s_version,
                &node.label_version,
            ]),
            workload: first(&[&o.workload, &node.workload_name, &node.node_id]),
            cluster: first(&[&o.cluster, &node.cluster_id]),
            mesh: first(&[&o.mesh, &node.mesh_id]),
            pod: first(&[&o.pod, &node.pod_name, &node.node_id]),
        }
    }

    /// The span tags: (tag name, filter-state key, value) for each field of `SPAN_TAGS`.
    pub fn span_tags(&self) -> [(&'static str, &'static str, &str); 5] {
        SPAN_TAGS.map(|(tag, key)| {
            let value = self
                .fields()
                .into_iter()
                .find(|(name, _)| *name == tag)
                .map_or(UNKNOWN, |(_, v)| v);
            (tag, key, value)
        })
    }

    /// (name, value) pairs, in the order the log line writes them.
    pub fn fields(&self) -> [(&'static str, &str); 7] {
        [
            ("service", &self.service),
            ("namespace", &self.namespace),
            ("version", &self.version),
            ("workload", &self.workload),
            ("cluster", &self.cluster),
            ("mesh", &self.mesh),
            ("pod", &self.pod),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Node metadata as istio-proxy writes it (a subset), as path → value.
    fn istio_node(labels: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("metadata/NAMESPACE", "shop"),
            ("metadata/WORKLOAD_NAME", "checkout-v2"),
            ("metadata/CLUSTER_ID", "Kubernetes"),
            ("metadata/MESH_ID", "cluster.local"),
            ("metadata/NAME", "checkout-v2-7d9f8c-abcde"),
            ("cluster", "checkout.shop"),
            (
                "id",
                "sidecar~10.0.0.7~checkout-v2-7d9f8c-abcde.shop~shop.svc.cluster.local",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in labels {
            m.insert(format!("metadata/LABELS/{k}"), v.to_string());
        }
        m
    }

    fn read(m: &HashMap<String, String>) -> NodeInfo {
        NodeInfo::read(|path| m.get(&path.join("/")).cloned())
    }

    #[test]
    fn canonical_labels_first() {
        let m = istio_node(&[
            ("service.istio.io/canonical-name", "checkout"),
            ("service.istio.io/canonical-revision", "v2"),
            ("app.kubernetes.io/name", "checkout-k8s"),
            ("app", "checkout-app"),
            ("version", "v2-label"),
        ]);
        let w = Workload::resolve(&read(&m), &WorkloadOverrides::default());
        assert_eq!(w.service, "checkout");
        assert_eq!(w.version, "v2");
        assert_eq!(w.namespace, "shop");
        assert_eq!(w.workload, "checkout-v2");
        assert_eq!(w.cluster, "Kubernetes");
        assert_eq!(w.mesh, "cluster.local");
        assert_eq!(w.pod, "checkout-v2-7d9f8c-abcde");
    }

    #[test]
    fn partial_labels_fall_through_in_order() {
        let m = istio_node(&[
            ("app.kubernetes.io/name", "checkout-k8s"),
            ("version", "v1"),
        ]);
        let w = Workload::resolve(&read(&m), &WorkloadOverrides::default());
        assert_eq!(w.service, "checkout-k8s");
        assert_eq!(w.version, "v1");
        let m = istio_node(&[("app", "checkout-app")]);
        let w = Workload::resolve(&read(&m), &WorkloadOverrides::default());
        assert_eq!(w.service, "checkout-app");
        assert_eq!(w.version, UNKNOWN);
        let m = istio_node(&[]);
        let w = Workload::resolve(&read(&m), &WorkloadOverrides::default());
        assert_eq!(w.service, "checkout-v2", "no labels: the workload name");
    }

    #[test]
    fn overrides_win() {
        let m = istio_node(&[("app", "checkout-app")]);
        let o = WorkloadOverrides {
            service: Some("payments".into()),
            version: Some("canary".into()),
            cluster: Some("eu-1".into()),
            ..Default::default()
        };
        let w = Workload::resolve(&read(&m), &o);
        assert_eq!(
            (w.service.as_str(), w.version.as_str(), w.cluster.as_str()),
            ("payments", "canary", "eu-1")
        );
        assert_eq!(w.namespace, "shop");
    }

    #[test]
    fn plain_envoy_uses_node_cluster_and_id() {
        let m: HashMap<String, String> = [("cluster", "frontend.default"), ("id", "n1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let w = Workload::resolve(&read(&m), &WorkloadOverrides::default());
        assert_eq!(w.service, "frontend.default");
        assert_eq!(w.workload, "n1");
        assert_eq!(w.pod, "n1");
        assert_eq!(w.namespace, UNKNOWN);
        assert_eq!(w.version, UNKNOWN);
    }

    #[test]
    fn nothing_at_all_is_unknown() {
        let w = Workload::resolve(
            &NodeInfo::read(|_| Some(" ".into())),
            &WorkloadOverrides::default(),
        );
        assert!(w.fields().iter().all(|(_, v)| *v == UNKNOWN), "{w:?}");
    }
}
