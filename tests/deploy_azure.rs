//! `deploy/azure/logs-ingestion.json` (ARM) against the rows the exporter sends: the
//! DCR's stream declares exactly the columns `LogRecord` serialises, with matching types;
//! the table has the same columns; names and types are ones Log Analytics accepts; the
//! data flow passes the stream unchanged (`source`) into `Custom-MqscopeEvents_CL`; the
//! role assignment is Monitoring Metrics Publisher on the rule; every parameter and
//! variable referenced is declared. A field added to `LogRecord` fails to compile below
//! (the literal lists every field) until the template gains its column.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mqscope::export::LogRecord;
use mqscope::export::azure::config::DEFAULT_STREAM;
use serde_json::Value;

fn template() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/azure/logs-ingestion.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read template")).expect("JSON")
}

/// `"[variables('x')]"` → the variable's value; anything else as it is.
fn resolve<'a>(t: &'a Value, v: &'a Value) -> &'a Value {
    v.as_str()
        .and_then(|s| s.strip_prefix("[variables('"))
        .and_then(|s| s.strip_suffix("')]"))
        .map(|name| &t["variables"][name])
        .unwrap_or(v)
}

fn resource<'a>(t: &'a Value, ty: &str) -> &'a Value {
    let found: Vec<&Value> = t["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| {
            r["type"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(ty))
        })
        .collect();
    assert_eq!(found.len(), 1, "one {ty}");
    found[0]
}

/// (name, lower-case type) of a column list.
fn columns(t: &Value, v: &Value) -> BTreeMap<String, String> {
    let cols = resolve(t, v).as_array().expect("columns array");
    let map: BTreeMap<String, String> = cols
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["type"].as_str().expect("type").to_ascii_lowercase(),
            )
        })
        .collect();
    assert_eq!(map.len(), cols.len(), "duplicate column names");
    map
}

/// Every field set, so every column appears in the JSON.
fn full_record() -> LogRecord {
    LogRecord {
        ts_ns: 1_700_000_000_123_000_000,
        time_generated: "2023-11-14T22:13:20.123Z".into(),
        record_type: "alert",
        kind: "auth_brute_force".into(),
        severity: "high".into(),
        source: "firing".into(),
        client_id: Some("dev-1".into()),
        username: Some("u".into()),
        client_address: Some("10.0.0.7:51000".into()),
        broker_address: Some("10.0.0.1:1883".into()),
        topic: Some("a/b".into()),
        code: Some(0x87),
        detail: Some("d".into()),
        message: "m".into(),
        attributes: [("fingerprint".to_string(), "0123".to_string())].into(),
    }
}

/// The Log Analytics type each serialised value needs.
fn expected_columns() -> BTreeMap<String, String> {
    let v = serde_json::to_value(full_record()).expect("serialise");
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| {
            let ty = match v {
                // Ingestion parses ISO 8601 strings into datetime columns.
                Value::String(s) if k == "TimeGenerated" => {
                    assert!(s.ends_with('Z') && s.len() == 24, "{s}");
                    "datetime"
                }
                Value::String(_) => "string",
                Value::Number(n) if n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()) => "int",
                Value::Number(n) if n.is_i64() || n.is_u64() => "long",
                Value::Number(_) => "real",
                Value::Bool(_) => "boolean",
                Value::Object(_) | Value::Array(_) => "dynamic",
                Value::Null => panic!("{k} is null"),
            };
            (k.clone(), ty.to_string())
        })
        .collect()
}

/// Custom table columns: a letter first, then letters, digits or `_`, at most 45
/// characters; `_`-prefixed and a few names are Azure's own ("Add or delete tables and
/// columns in Azure Monitor Logs").
fn valid_column_name(n: &str) -> bool {
    const RESERVED: [&str; 7] = [
        "id",
        "_ResourceId",
        "_SubscriptionId",
        "TenantId",
        "Type",
        "UniqueId",
        "Title",
    ];
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && n.len() <= 45
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(n))
}

#[test]
fn dcr_stream_and_table_columns_are_what_the_exporter_sends() {
    let t = template();
    let want = expected_columns();
    assert_eq!(want.len(), 14, "{want:?}");

    let dcr = resource(&t, "Microsoft.Insights/dataCollectionRules");
    let decls = dcr["properties"]["streamDeclarations"]
        .as_object()
        .expect("streamDeclarations");
    assert_eq!(decls.keys().collect::<Vec<_>>(), [DEFAULT_STREAM]);
    let stream_cols = columns(&t, &decls[DEFAULT_STREAM]["columns"]);
    assert_eq!(stream_cols, want, "DCR stream columns vs LogRecord");
    // Types a stream declaration accepts (DCR structure, streamDeclarations).
    for ty in stream_cols.values() {
        assert!(
            [
                "string", "int", "long", "real", "boolean", "dynamic", "datetime"
            ]
            .contains(&ty.as_str()),
            "{ty}"
        );
    }

    let table = resource(&t, "Microsoft.OperationalInsights/workspaces/tables");
    let schema = &table["properties"]["schema"];
    let table_name = resolve(&t, &schema["name"]).as_str().expect("table name");
    assert_eq!(table_name, "MqscopeEvents_CL");
    assert!(table_name.ends_with("_CL"), "custom tables end in _CL");
    let table_cols = columns(&t, &schema["columns"]);
    assert_eq!(table_cols, want, "table columns vs LogRecord");
    // Table column types (REST ColumnTypeEnum, compared case-insensitively).
    for (name, ty) in &table_cols {
        assert!(valid_column_name(name), "{name}");
        assert!(
            [
                "string", "int", "long", "real", "boolean", "datetime", "guid", "dynamic"
            ]
            .contains(&ty.as_str()),
            "{ty}"
        );
    }
    assert_eq!(
        table_cols["TimeGenerated"], "datetime",
        "every table needs it"
    );
}

#[test]
fn data_flow_destination_endpoint_and_role() {
    let t = template();
    let dcr = resource(&t, "Microsoft.Insights/dataCollectionRules");
    let p = &dcr["properties"];
    let dest = p["destinations"]["logAnalytics"]
        .as_array()
        .expect("logAnalytics");
    assert_eq!(dest.len(), 1);
    let dest_name = resolve(&t, &dest[0]["name"]).as_str().expect("name");
    assert!(
        dest[0]["workspaceResourceId"]
            .as_str()
            .is_some_and(|s| s.contains("Microsoft.OperationalInsights/workspaces")),
        "{}",
        dest[0]
    );
    let flows = p["dataFlows"].as_array().expect("dataFlows");
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| resolve(&t, x).as_str().expect("string").to_string())
            .collect()
    };
    assert_eq!(strs(&f["streams"]), [DEFAULT_STREAM]);
    assert_eq!(strs(&f["destinations"]), [dest_name]);
    assert_eq!(resolve(&t, &f["transformKql"]), "source");
    assert_eq!(resolve(&t, &f["outputStream"]), "Custom-MqscopeEvents_CL");
    assert!(
        p["dataCollectionEndpointId"]
            .as_str()
            .is_some_and(|s| s.contains("Microsoft.Insights/dataCollectionEndpoints")),
        "the rule uses the endpoint"
    );
    resource(&t, "Microsoft.Insights/dataCollectionEndpoints");

    let role = resource(&t, "Microsoft.Authorization/roleAssignments");
    let rp = &role["properties"];
    // Monitoring Metrics Publisher (Azure built-in roles).
    assert_eq!(
        resolve(&t, &t["variables"]["monitoringMetricsPublisher"]),
        "3913510d-42f4-4e42-8a64-420c390055eb"
    );
    assert!(
        rp["roleDefinitionId"]
            .as_str()
            .is_some_and(|s| s.contains("variables('monitoringMetricsPublisher')")),
        "{rp}"
    );
    assert_eq!(rp["principalId"], "[parameters('principalId')]");
    assert!(
        role["scope"]
            .as_str()
            .is_some_and(|s| s.contains("Microsoft.Insights/dataCollectionRules")),
        "scoped to the rule: {role}"
    );
    for out in ["endpoint", "dcrImmutableId", "stream"] {
        assert!(t["outputs"][out]["value"].is_string(), "output {out}");
    }
}

/// Every `parameters('x')` / `variables('x')` in an expression is declared.
#[test]
fn every_reference_is_declared() {
    let t = template();
    let text = serde_json::to_string(&t).expect("text");
    for (kind, section) in [("parameters('", "parameters"), ("variables('", "variables")] {
        let mut seen = 0;
        for part in text.split(kind).skip(1) {
            let name = part.split('\'').next().expect("name");
            assert!(
                t[section].get(name).is_some(),
                "{section}.{name} not declared"
            );
            seen += 1;
        }
        assert!(seen > 0);
    }
    for (name, p) in t["parameters"].as_object().expect("parameters") {
        let used = text.matches(&format!("parameters('{name}')")).count();
        assert!(used > 0, "parameter {name} unused");
        assert!(p["type"].is_string(), "{name} has a type");
    }
}
