//! A record set as stored and shown (issue 9): `{zone}/{TYPE}/{relativeName}`,
//! typed. Its type is part of its ARM type (`…/privateDnsZones/A`), so one
//! struct serves every record type and carries only its own type's records.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::{id, resource, ArmError, RESOURCES};
use recoverite_store::{Reader, WriteTx};

use crate::ZONE_TYPE;

pub const DEFAULT_TTL: u64 = 3600;
/// Azure's upper bound on a record set's TTL (an Int32 of seconds).
pub const MAX_TTL: u64 = 2_147_483_647;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ARecord {
    #[serde(rename = "ipv4Address")]
    pub ipv4_address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AaaaRecord {
    #[serde(rename = "ipv6Address")]
    pub ipv6_address: Ipv6Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnameRecord {
    pub cname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MxRecord {
    pub preference: u32,
    pub exchange: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PtrRecord {
    pub ptrdname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrvRecord {
    pub priority: u32,
    pub weight: u32,
    pub port: u32,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxtRecord {
    pub value: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoaRecord {
    pub host: String,
    pub email: String,
    pub serial_number: u64,
    pub refresh_time: u64,
    pub retry_time: u64,
    pub expire_time: u64,
    pub minimum_ttl: u64,
}

impl SoaRecord {
    /// The SOA every new zone gets, with Azure's values.
    pub fn azure_default() -> Self {
        SoaRecord {
            host: "azureprivatedns.net".into(),
            email: "azureprivatedns-host.microsoft.com".into(),
            serial_number: 1,
            refresh_time: 3600,
            retry_time: 300,
            expire_time: 2_419_200,
            minimum_ttl: 10,
        }
    }
}

/// `RecordSetProperties`: the common fields and the records of the set's
/// own type (exactly one of the lists is present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSetProperties {
    pub ttl: u64,
    pub fqdn: String,
    pub is_auto_registered: bool,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_records: Option<Vec<ARecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aaaa_records: Option<Vec<AaaaRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname_record: Option<CnameRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_records: Option<Vec<MxRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptr_records: Option<Vec<PtrRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srv_records: Option<Vec<SrvRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txt_records: Option<Vec<TxtRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soa_record: Option<SoaRecord>,
}

/// A stored record set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSet {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: RecordSetProperties,
}

impl RecordSet {
    /// The record type (`A`, `CNAME`, …), the last part of its ARM type.
    pub fn record_type(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or_default()
    }

    /// Its A records' addresses.
    pub fn ipv4s(&self) -> Vec<Ipv4Addr> {
        self.properties
            .a_records
            .iter()
            .flatten()
            .map(|r| r.ipv4_address)
            .collect()
    }
}

pub fn record_id(zone_id: &str, rtype: &str, rel: &str) -> String {
    format!("{zone_id}/{rtype}/{rel}")
}

/// The name a record set answers for, absolute with its trailing dot.
pub fn fqdn(rel: &str, zone: &str) -> String {
    if rel == "@" {
        format!("{zone}.")
    } else {
        format!("{rel}.{zone}.")
    }
}

fn is_record_set(doc: &Value) -> bool {
    doc["type"].as_str().is_some_and(|t| {
        t.len() > ZONE_TYPE.len() + 1
            && t[..ZONE_TYPE.len()].eq_ignore_ascii_case(ZONE_TYPE)
            && t.as_bytes()[ZONE_TYPE.len()] == b'/'
            && !t.contains("/virtualNetworkLinks")
    })
}

fn read(key: &str, doc: Value) -> Result<RecordSet, ArmError> {
    serde_json::from_value(doc)
        .map_err(|e| ArmError::internal(format!("stored record set {key} does not read back: {e}")))
}

/// The record set at `id`, if there is one.
pub fn load(r: &impl Reader, rid: &str) -> Result<Option<RecordSet>, ArmError> {
    match resource::get(r, rid)? {
        Some(doc) if is_record_set(&doc) => read(rid, doc).map(Some),
        _ => Ok(None),
    }
}

/// Every record set of a zone (any type).
pub fn all(r: &impl Reader, zone_id: &str) -> Result<Vec<RecordSet>, ArmError> {
    let prefix = format!("{}/", id::key(zone_id));
    r.scan_json::<Value>(RESOURCES, &prefix)?
        .into_iter()
        .filter(|(_, v)| is_record_set(v))
        .map(|(k, v)| read(&k, v))
        .collect()
}

/// Writes the record set at its id.
pub fn save(tx: &mut WriteTx, set: &RecordSet) -> Result<(), ArmError> {
    resource::put(tx, &set.id, &to_value(set)?)
}

pub fn to_value(set: &RecordSet) -> Result<Value, ArmError> {
    serde_json::to_value(set).map_err(|e| ArmError::internal(e.to_string()))
}

fn bad(msg: impl Into<String>) -> ArmError {
    ArmError::bad_request("BadRequest", msg)
}

/// One field of the body as `T`, or `msg` as the error.
fn field<T: DeserializeOwned>(p: &Value, key: &str, msg: &str) -> Result<Option<T>, ArmError> {
    match &p[key] {
        Value::Null => Ok(None),
        v => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| bad(msg)),
    }
}

impl RecordSetProperties {
    /// The properties a PUT (`existing` is `None`) or PATCH (`existing` is
    /// what is stored) of a `rtype` record set gives: what the body names
    /// replaces, the rest is kept (PATCH) or Azure's default (PUT). Only the
    /// set's own type's records are read.
    pub fn given(
        rtype: &str,
        fqdn: String,
        body: &Value,
        existing: Option<&RecordSetProperties>,
    ) -> Result<Self, ArmError> {
        let ttl = match &body["ttl"] {
            Value::Null => existing.map_or(DEFAULT_TTL, |e| e.ttl),
            v => v
                .as_u64()
                .ok_or_else(|| bad("ttl must be a whole number of seconds."))?,
        };
        if ttl > MAX_TTL {
            return Err(bad("ttl must be at most 2147483647 seconds."));
        }
        let metadata = match &body["metadata"] {
            Value::Object(m) => m.clone(),
            _ => existing.map(|e| e.metadata.clone()).unwrap_or_default(),
        };
        let mut p = RecordSetProperties {
            ttl,
            fqdn,
            is_auto_registered: false,
            metadata,
            a_records: None,
            aaaa_records: None,
            cname_record: None,
            mx_records: None,
            ptr_records: None,
            srv_records: None,
            txt_records: None,
            soa_record: None,
        };
        // A list not given is kept (PATCH) or empty (PUT).
        fn list<T: DeserializeOwned + Clone>(
            body: &Value,
            key: &str,
            msg: &str,
            kept: Option<&Option<Vec<T>>>,
        ) -> Result<Option<Vec<T>>, ArmError> {
            Ok(Some(match field(body, key, msg)? {
                Some(v) => v,
                None => kept.cloned().flatten().unwrap_or_default(),
            }))
        }
        // One list of records per type, each read whole or refused with what to send.
        macro_rules! records {
            ($field:ident, $key:literal, $msg:literal) => {
                p.$field = list(body, $key, $msg, existing.map(|e| &e.$field))?
            };
        }
        match rtype {
            "A" => records!(
                a_records,
                "aRecords",
                "Every aRecords entry needs a valid ipv4Address."
            ),
            "AAAA" => records!(
                aaaa_records,
                "aaaaRecords",
                "Every aaaaRecords entry needs a valid ipv6Address."
            ),
            "MX" => records!(
                mx_records,
                "mxRecords",
                "Every mxRecords entry needs preference and exchange."
            ),
            "PTR" => records!(
                ptr_records,
                "ptrRecords",
                "Every ptrRecords entry needs ptrdname."
            ),
            "SRV" => records!(
                srv_records,
                "srvRecords",
                "Every srvRecords entry needs priority, weight, port and target."
            ),
            "TXT" => records!(
                txt_records,
                "txtRecords",
                "Every txtRecords entry needs a 'value' list of strings."
            ),
            "CNAME" => {
                let msg = "A CNAME record set needs cnameRecord.cname.";
                let c = match field::<CnameRecord>(body, "cnameRecord", msg)? {
                    Some(c) => Some(c),
                    None => existing.and_then(|e| e.cname_record.clone()),
                };
                p.cname_record = Some(c.filter(|c| !c.cname.is_empty()).ok_or_else(|| bad(msg))?);
            }
            _ => p.soa_record = Some(soa(body, existing)?),
        }
        Ok(p)
    }
}

/// An SOA update: the fields given replace the stored ones, except `host`,
/// which Azure keeps.
fn soa(body: &Value, existing: Option<&RecordSetProperties>) -> Result<SoaRecord, ArmError> {
    let stored = existing
        .and_then(|e| e.soa_record.clone())
        .unwrap_or_else(SoaRecord::azure_default);
    let Some(given) = body["soaRecord"].as_object() else {
        return Ok(stored);
    };
    let mut merged =
        serde_json::to_value(&stored).map_err(|e| ArmError::internal(e.to_string()))?;
    for (k, v) in given {
        if k != "host" {
            merged[k] = v.clone();
        }
    }
    serde_json::from_value(merged).map_err(|_| {
        bad("soaRecord's email must be a string and its serialNumber, refreshTime, retryTime, expireTime and minimumTtl whole numbers.")
    })
}

/// "A CNAME record set cannot coexist with other record sets of the same
/// name, and cannot sit at the zone apex" (RFC 1034 §3.6.2, as Azure DNS
/// enforces it). `siblings` are the record types already at `rel`.
pub fn check_cname_exclusive(rtype: &str, rel: &str, siblings: &[String]) -> Result<(), ArmError> {
    let others = siblings.iter().any(|t| !t.eq_ignore_ascii_case(rtype));
    if rtype == "CNAME" && (rel == "@" || others) {
        return Err(ArmError::conflict(
            "Conflict",
            format!("A CNAME record set '{rel}' cannot coexist with other record sets of the same name or sit at the zone apex."),
        ));
    }
    if rtype != "CNAME" && siblings.iter().any(|t| t.eq_ignore_ascii_case("CNAME")) {
        return Err(ArmError::conflict(
            "Conflict",
            format!("The name '{rel}' already has a CNAME record set; no other record set can share its name."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_put_reads_only_its_types_records_and_defaults_the_rest() {
        let body =
            json!({"aRecords": [{"ipv4Address": "10.0.0.4"}], "txtRecords": [{"value": ["x"]}]});
        let p = RecordSetProperties::given("A", "a.z.".into(), &body, None).unwrap();
        assert_eq!(p.ttl, DEFAULT_TTL);
        assert_eq!(
            p.a_records.as_ref().unwrap()[0].ipv4_address,
            Ipv4Addr::new(10, 0, 0, 4)
        );
        assert_eq!(p.txt_records, None);
        let shown = serde_json::to_value(&p).unwrap();
        assert_eq!(shown["aRecords"][0]["ipv4Address"], "10.0.0.4");
        assert!(shown.get("txtRecords").is_none());
        assert_eq!(shown["isAutoRegistered"], false);
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name() {
        let body =
            json!({"ttl": 60, "metadata": {"k": "v"}, "aRecords": [{"ipv4Address": "10.0.0.4"}]});
        let stored = RecordSetProperties::given("A", "a.z.".into(), &body, None).unwrap();
        let p = RecordSetProperties::given("A", "a.z.".into(), &json!({"ttl": 30}), Some(&stored))
            .unwrap();
        assert_eq!(p.ttl, 30);
        assert_eq!(p.metadata["k"], "v");
        assert_eq!(p.a_records, stored.a_records);
    }

    #[test]
    fn records_that_cannot_be_records_are_refused_with_what_to_send() {
        let e = |t: &str, b: Value| {
            RecordSetProperties::given(t, "a.z.".into(), &b, None)
                .unwrap_err()
                .body
                .message
                .clone()
        };
        assert!(
            e("A", json!({"aRecords": [{"ipv4Address": "10.0.0.300"}]})).contains("ipv4Address")
        );
        assert!(
            e("AAAA", json!({"aaaaRecords": [{"ipv6Address": "nope"}]})).contains("ipv6Address")
        );
        assert!(e("CNAME", json!({})).contains("cnameRecord.cname"));
        assert!(e("CNAME", json!({"cnameRecord": {"cname": ""}})).contains("cnameRecord.cname"));
        assert!(e("MX", json!({"mxRecords": [{"exchange": "mail"}]})).contains("preference"));
        assert!(e(
            "SRV",
            json!({"srvRecords": [{"priority": 1, "weight": 1, "target": "t"}]})
        )
        .contains("port"));
        assert!(e("TXT", json!({"txtRecords": [{"value": [1]}]})).contains("'value'"));
        assert!(e("PTR", json!({"ptrRecords": [{}]})).contains("ptrdname"));
        assert!(e("A", json!({"ttl": 2_147_483_648u64})).contains("at most"));
    }

    #[test]
    fn an_soa_update_keeps_its_host() {
        let stored = RecordSetProperties::given("SOA", "z.".into(), &json!({}), None).unwrap();
        let p = RecordSetProperties::given(
            "SOA",
            "z.".into(),
            &json!({"soaRecord": {"host": "evil", "email": "me.example.com", "minimumTtl": 60}}),
            Some(&stored),
        )
        .unwrap();
        let soa = p.soa_record.unwrap();
        assert_eq!(soa.host, "azureprivatedns.net");
        assert_eq!(
            (soa.email.as_str(), soa.minimum_ttl),
            ("me.example.com", 60)
        );
    }

    #[test]
    fn a_cname_owns_its_name() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_cname_exclusive("CNAME", "www", &s(&["CNAME"])).is_ok());
        assert_eq!(
            check_cname_exclusive("CNAME", "www", &s(&["A"]))
                .unwrap_err()
                .code(),
            "Conflict"
        );
        assert_eq!(
            check_cname_exclusive("CNAME", "@", &s(&[]))
                .unwrap_err()
                .code(),
            "Conflict"
        );
        assert_eq!(
            check_cname_exclusive("TXT", "www", &s(&["CNAME"]))
                .unwrap_err()
                .code(),
            "Conflict"
        );
        assert!(check_cname_exclusive("TXT", "www", &s(&["A"])).is_ok());
    }
}
