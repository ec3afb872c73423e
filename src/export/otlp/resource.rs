//! The OTLP resource (who is sending) and instrumentation scope.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::OtlpConfig;
use super::logs::kv_str;

pub const SERVICE_NAME: &str = "mqscope";

/// `service.name = "mqscope"`, `service.version`, `service.instance.id` (the pod name in
/// Kubernetes, where `$HOSTNAME` is the pod name; else the host name), then the
/// configured `[otlp.resource]` entries, which replace defaults of the same name.
pub fn resource(cfg: &OtlpConfig) -> Result<Resource, String> {
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), SERVICE_NAME.into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("service.instance.id".into(), instance_id()),
    ];
    for (k, v) in &cfg.resource {
        let v = v.resolve().map_err(|e| format!("resource.{k}: {e}"))?;
        match attrs.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v,
            None => attrs.push((k.clone(), v)),
        }
    }
    Ok(Resource {
        attributes: attrs.iter().map(|(k, v)| kv_str(k, v)).collect(),
        ..Default::default()
    })
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SERVICE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn instance_id() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.is_empty()
    {
        return h;
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits (checked below by looking for the NUL).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0
        && let Some(end) = buf.iter().position(|&b| b == 0)
        && end > 0
    {
        return String::from_utf8_lossy(&buf[..end]).into_owned();
    }
    format!("mqscope-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp::config::ValueFrom;
    use opentelemetry_proto::tonic::common::v1::any_value;

    fn attr(r: &Resource, k: &str) -> Option<String> {
        r.attributes.iter().find(|x| x.key == k).and_then(|x| {
            match x.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    }

    #[test]
    fn defaults_and_overrides() {
        let mut cfg = OtlpConfig::default();
        let r = resource(&cfg).unwrap();
        assert_eq!(attr(&r, "service.name").as_deref(), Some("mqscope"));
        assert!(!attr(&r, "service.instance.id").unwrap().is_empty());
        cfg.resource.insert(
            "service.instance.id".into(),
            ValueFrom::Literal("pod-7".into()),
        );
        cfg.resource.insert(
            "k8s.namespace.name".into(),
            ValueFrom::Literal("iot".into()),
        );
        let r = resource(&cfg).unwrap();
        assert_eq!(attr(&r, "service.instance.id").as_deref(), Some("pod-7"));
        assert_eq!(attr(&r, "k8s.namespace.name").as_deref(), Some("iot"));
        assert_eq!(
            r.attributes
                .iter()
                .filter(|k| k.key == "service.instance.id")
                .count(),
            1
        );
        cfg.resource.insert(
            "x".into(),
            ValueFrom::Env {
                env: "MQSCOPE_OTLP_RESOURCE_UNSET".into(),
            },
        );
        assert!(resource(&cfg).unwrap_err().starts_with("resource.x:"));
    }
}
