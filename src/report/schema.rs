//! The JSON Schemas of the versioned documents (docs/schema/), built into
//! the binary so `etcd-audit schema NAME` prints the one it writes.

/// Every document: its name (`etcd-audit.NAME/v1`) and schema.
pub const SCHEMAS: [(&str, &str); 6] = [
    ("scan", include_str!("../../docs/schema/scan.v1.json")),
    ("inspect", include_str!("../../docs/schema/inspect.v1.json")),
    ("keys", include_str!("../../docs/schema/keys.v1.json")),
    ("configs", include_str!("../../docs/schema/configs.v1.json")),
    ("catalog", include_str!("../../docs/schema/catalog.v1.json")),
    ("exposure", include_str!("../../docs/schema/exposure.v1.json")),
];

/// The schema of `etcd-audit.NAME/v1`.
pub fn schema(name: &str) -> Option<&'static str> {
    SCHEMAS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_schema_is_json_naming_its_document() {
        for (name, text) in super::SCHEMAS {
            let schema: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(schema["properties"]["schema"]["const"], format!("etcd-audit.{name}/v1"));
        }
    }
}
