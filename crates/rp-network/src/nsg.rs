//! Network security groups and their rules.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::nsg::{self, Access, Direction, PortRange, Protocol, Rule};
use recoverite_netcore::tags;
use recoverite_store::{Reader, WriteTx};

use crate::child::{self, Child, ChildKind, GivenChild};
use crate::common::{self, *};

pub const NSG_TYPE: &str = "Microsoft.Network/networkSecurityGroups";
/// The linked action on this resource for whoever associates it with a subnet or NIC.
pub const JOIN: &str = "Microsoft.Network/networkSecurityGroups/join/action";
pub const RULE_TYPE: &str = "Microsoft.Network/networkSecurityGroups/securityRules";
pub const DEFAULT_RULE_TYPE: &str = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules";

/// A security rule as stored and shown (`SecurityRulePropertiesFormat`):
/// the single and plural forms of prefixes and ports as given, the plural
/// ones always present, as Azure shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_address_prefix: Option<String>,
    #[serde(default)]
    pub source_port_ranges: Vec<String>,
    #[serde(default)]
    pub destination_port_ranges: Vec<String>,
    #[serde(default)]
    pub source_address_prefixes: Vec<String>,
    #[serde(default)]
    pub destination_address_prefixes: Vec<String>,
    pub access: String,
    pub priority: u32,
    pub direction: String,
    pub provisioning_state: String,
}

impl ChildKind for RuleProperties {
    const TYPE: &'static str = RULE_TYPE;
    const NOUN: &'static str = "security rule";
    const SEGMENT: &'static str = "securityRules";
    const PARENT_TYPE: &'static str = NSG_TYPE;
}

/// A stored security rule.
pub type SecurityRule = Child<RuleProperties>;

fn bad_rule(code: &str, name: &str, msg: impl std::fmt::Display) -> ArmError {
    ArmError::bad_request(code, format!("Security rule {name} is not valid: {msg}"))
}

/// One string field of a rule's body: absent is `None`, anything but a
/// string is `code`'s error.
fn text(props: &Value, key: &str, code: &str, name: &str) -> Result<Option<String>, ArmError> {
    match &props[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(bad_rule(code, name, format!("{key} must be a string."))),
    }
}

/// One list-of-strings field of a rule's body.
fn texts(props: &Value, key: &str, code: &str, name: &str) -> Result<Vec<String>, ArmError> {
    match &props[key] {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad_rule(code, name, format!("{key} must list strings.")))
            })
            .collect(),
        _ => Err(bad_rule(code, name, format!("{key} must be a list."))),
    }
}

impl RuleProperties {
    /// A rule's body, read into its fields; what each field may hold is
    /// [`RuleProperties::rule`]'s to check.
    pub fn given(name: &str, props: &Value) -> Result<Self, ArmError> {
        check_name("security rule", name)?;
        let required = |key, code, what| {
            text(props, key, code, name)?.ok_or_else(|| bad_rule(code, name, what))
        };
        let protocol = required(
            "protocol",
            "SecurityRuleInvalidProtocol",
            "protocol must be Tcp, Udp, Icmp, Esp, Ah or *.",
        )?;
        let access = required(
            "access",
            "SecurityRuleInvalidAccess",
            "access must be Allow or Deny.",
        )?;
        let direction = required(
            "direction",
            "SecurityRuleInvalidDirection",
            "direction must be Inbound or Outbound.",
        )?;
        let priority = props["priority"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| {
                bad_rule(
                    "SecurityRuleInvalidPriority",
                    name,
                    "priority must be a whole number from 100 to 4096.",
                )
            })?;
        let asgs = |k: &str| props[k].as_array().is_some_and(|a| !a.is_empty());
        if asgs("sourceApplicationSecurityGroups") || asgs("destinationApplicationSecurityGroups") {
            return Err(bad_rule("SecurityRuleApplicationSecurityGroupsNotSupported", name, "application security groups are not modelled by recoverite; use address prefixes or service tags."));
        }
        const PREFIX: &str = "SecurityRuleInvalidAddressPrefix";
        const PORT: &str = "SecurityRuleInvalidPortRange";
        Ok(RuleProperties {
            description: text(props, "description", "InvalidRequestFormat", name)?,
            protocol,
            source_port_range: text(props, "sourcePortRange", PORT, name)?,
            destination_port_range: text(props, "destinationPortRange", PORT, name)?,
            source_address_prefix: text(props, "sourceAddressPrefix", PREFIX, name)?,
            destination_address_prefix: text(props, "destinationAddressPrefix", PREFIX, name)?,
            source_port_ranges: texts(props, "sourcePortRanges", PORT, name)?,
            destination_port_ranges: texts(props, "destinationPortRanges", PORT, name)?,
            source_address_prefixes: texts(props, "sourceAddressPrefixes", PREFIX, name)?,
            destination_address_prefixes: texts(props, "destinationAddressPrefixes", PREFIX, name)?,
            access,
            priority,
            direction,
            provisioning_state: "Succeeded".into(),
        })
    }

    /// The rule the network evaluates, or the error Azure gives for the
    /// first field that cannot be one.
    pub fn rule(&self, name: &str) -> Result<Rule, ArmError> {
        let protocol = Protocol::parse(&self.protocol).ok_or_else(|| {
            bad_rule(
                "SecurityRuleInvalidProtocol",
                name,
                "protocol must be Tcp, Udp, Icmp, Esp, Ah or *.",
            )
        })?;
        let access = match self.access.to_ascii_lowercase().as_str() {
            "allow" => Access::Allow,
            "deny" => Access::Deny,
            _ => {
                return Err(bad_rule(
                    "SecurityRuleInvalidAccess",
                    name,
                    "access must be Allow or Deny.",
                ))
            }
        };
        let direction = match self.direction.to_ascii_lowercase().as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            _ => {
                return Err(bad_rule(
                    "SecurityRuleInvalidDirection",
                    name,
                    "direction must be Inbound or Outbound.",
                ))
            }
        };
        let both = |one: &Option<String>, many: &[String]| {
            one.iter().chain(many).cloned().collect::<Vec<String>>()
        };
        let prefixes = |one, many: &[String], what| -> Result<Vec<String>, ArmError> {
            let v = both(one, many);
            if v.is_empty() {
                return Err(bad_rule(
                    "SecurityRuleInvalidAddressPrefix",
                    name,
                    format!("{what}AddressPrefix or {what}AddressPrefixes is required."),
                ));
            }
            if let Some(bad) = v.iter().find(|p| !tags::is_valid_prefix(p)) {
                return Err(bad_rule(
                    "SecurityRuleInvalidAddressPrefix",
                    name,
                    format!(
                        "'{bad}' is neither an IP address, a CIDR prefix, '*' nor a known service tag."
                    ),
                ));
            }
            Ok(v)
        };
        let ports = |one, many: &[String], what| -> Result<Vec<PortRange>, ArmError> {
            let v = both(one, many);
            if v.is_empty() {
                return Err(bad_rule(
                    "SecurityRuleInvalidPortRange",
                    name,
                    format!("{what}PortRange or {what}PortRanges is required."),
                ));
            }
            v.iter()
                .map(|p| {
                    PortRange::parse(p).ok_or_else(|| {
                        bad_rule(
                            "SecurityRuleInvalidPortRange",
                            name,
                            format!("'{p}' is not '*', a port or a range like 1000-2000."),
                        )
                    })
                })
                .collect()
        };
        Ok(Rule {
            name: name.to_string(),
            priority: self.priority,
            direction,
            access,
            protocol,
            source_prefixes: prefixes(
                &self.source_address_prefix,
                &self.source_address_prefixes,
                "source",
            )?,
            source_ports: ports(&self.source_port_range, &self.source_port_ranges, "source")?,
            destination_prefixes: prefixes(
                &self.destination_address_prefix,
                &self.destination_address_prefixes,
                "destination",
            )?,
            destination_ports: ports(
                &self.destination_port_range,
                &self.destination_port_ranges,
                "destination",
            )?,
        })
    }
}

/// Reads and checks one rule's body: its stored properties and the rule.
pub fn parse_rule(name: &str, props: &Value) -> Result<(RuleProperties, Rule), ArmError> {
    let p = RuleProperties::given(name, props)?;
    let rule = p.rule(name)?;
    Ok((p, rule))
}

fn check_rules(rules: &[Rule]) -> Result<(), ArmError> {
    nsg::validate(rules).map_err(|m| {
        let code = if m.contains("Allowed range") {
            "SecurityRuleInvalidPriority"
        } else {
            "SecurityRuleConflict"
        };
        ArmError::bad_request(code, m)
    })
}

/// A group's rules, as they will be, checked together.
fn check_all(rules: &[(String, RuleProperties)]) -> Result<(), ArmError> {
    let rules: Vec<Rule> = rules
        .iter()
        .map(|(n, p)| p.rule(n))
        .collect::<Result<_, _>>()?;
    check_rules(&rules)
}

fn default_rules(nsg_id: &str) -> Vec<SecurityRule> {
    let desc = |n: &str| match n {
        "AllowVnetInBound" => "Allow inbound traffic from all VMs in VNET",
        "AllowAzureLoadBalancerInBound" => "Allow inbound traffic from azure load balancer",
        "DenyAllInBound" => "Deny all inbound traffic",
        "AllowVnetOutBound" => "Allow outbound traffic from all VMs to all VMs in VNET",
        "AllowInternetOutBound" => "Allow outbound traffic from all VMs to Internet",
        _ => "Deny all outbound traffic",
    };
    let any = || Some("*".to_string());
    nsg::default_rules()
        .into_iter()
        .map(|r| Child {
            id: child_id(nsg_id, "defaultSecurityRules", &r.name),
            kind: DEFAULT_RULE_TYPE.to_string(),
            etag: etag(),
            properties: RuleProperties {
                description: Some(desc(&r.name).to_string()),
                protocol: "*".into(),
                source_port_range: any(),
                destination_port_range: any(),
                source_address_prefix: Some(r.source_prefixes[0].clone()),
                destination_address_prefix: Some(r.destination_prefixes[0].clone()),
                source_port_ranges: Vec::new(),
                destination_port_ranges: Vec::new(),
                source_address_prefixes: Vec::new(),
                destination_address_prefixes: Vec::new(),
                access: format!("{:?}", r.access),
                priority: r.priority,
                direction: format!("{:?}", r.direction),
                provisioning_state: "Succeeded".into(),
            },
            name: r.name,
        })
        .collect()
}
/// NICs that use an NSG (read-only back references).
fn nics_using(r: &impl Reader, sub: &str, nsg_id: &str) -> Result<Vec<Value>, ArmError> {
    Ok(crate::interface::list(r, &format!("/subscriptions/{sub}"))?
        .into_iter()
        .filter(|n| {
            n.properties
                .network_security_group
                .as_ref()
                .is_some_and(|x| key(&x.id) == key(nsg_id))
        })
        .map(|n| json!({"id": n.id}))
        .collect())
}

/// Subnets that use an NSG.
fn subnets_using(r: &impl Reader, sub: &str, nsg_id: &str) -> Result<Vec<Value>, ArmError> {
    Ok(crate::network::subnets_of_subscription(r, sub)?
        .into_iter()
        .filter(|s| {
            s.properties
                .network_security_group
                .as_ref()
                .is_some_and(|x| key(&x.id) == key(nsg_id))
        })
        .map(|s| json!({"id": s.id}))
        .collect())
}

/// The custom rules of an NSG, for evaluation.
pub fn rules_of(r: &impl Reader, nsg_id: &str) -> Result<Vec<Rule>, ArmError> {
    child::list::<RuleProperties>(r, nsg_id)?
        .iter()
        .map(|c| c.properties.rule(&c.name))
        .collect()
}

/// A network security group's stored properties; its rules are child
/// resources, and the default rules, subnets and NICs using it are shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NsgProperties {
    pub provisioning_state: String,
    pub resource_guid: String,
    pub flush_connection: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenNsg {
    security_rules: Option<Vec<GivenChild>>,
    flush_connection: Option<bool>,
}

/// Network security groups, served by the tracked-resource core: inline
/// rules replace the group's rules (in the order given, checked together);
/// one a subnet or NIC uses is not deleted.
pub struct SecurityGroup;

impl TrackedKind for SecurityGroup {
    const TYPE: &'static str = NSG_TYPE;
    const NOUN: &'static str = "network security group";
    const ETAG: bool = true;
    const ASYNC: bool = true;
    type Properties = NsgProperties;
    type Given = GivenNsg;

    fn new_etag() -> String {
        common::etag()
    }

    fn check_name(name: &str) -> Result<(), ArmError> {
        check_name("network security group", name)
    }

    fn properties(
        _: &Ctx,
        tx: &mut WriteTx,
        id: &str,
        given: GivenNsg,
        existing: Option<&NsgProperties>,
        patch: bool,
    ) -> Result<NsgProperties, ArmError> {
        // PATCH is Azure's `updateTags` (a TagsObject): it changes nothing else.
        if let (true, Some(e)) = (patch, existing) {
            return Ok(e.clone());
        }
        let rules = child::named(given.security_rules, RuleProperties::given)?;
        check_all(&rules)?;
        child::replace(tx, id, rules)?;
        Ok(NsgProperties {
            provisioning_state: "Succeeded".into(),
            resource_guid: existing
                .map(|e| e.resource_guid.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            flush_connection: given.flush_connection.unwrap_or(false),
        })
    }

    fn render(r: &impl Reader, doc: &mut Value) -> Result<(), ArmError> {
        let nid = doc["id"].as_str().unwrap_or_default().to_string();
        let sub = nid.split('/').nth(2).unwrap_or_default().to_string();
        doc["properties"]["securityRules"] =
            Value::Array(child::values(&child::list::<RuleProperties>(r, &nid)?)?);
        doc["properties"]["defaultSecurityRules"] =
            Value::Array(child::values(&default_rules(&nid))?);
        let subnets = subnets_using(r, &sub, &nid)?;
        if !subnets.is_empty() {
            doc["properties"]["subnets"] = Value::Array(subnets);
        }
        let nics = nics_using(r, &sub, &nid)?;
        if !nics.is_empty() {
            doc["properties"]["networkInterfaces"] = Value::Array(nics);
        }
        Ok(())
    }

    fn deleting(tx: &mut WriteTx, doc: &Tracked<NsgProperties>) -> Result<(), ArmError> {
        let sub = doc.id.split('/').nth(2).unwrap_or_default().to_string();
        let mut using = subnets_using(tx, &sub, &doc.id)?;
        using.extend(nics_using(tx, &sub, &doc.id)?);
        match using.first() {
            Some(u) => Err(ArmError::bad_request(
                "InUseNetworkSecurityGroupCannotBeDeleted",
                format!("Network security group {} cannot be deleted because it is in use by {}. Dissociate it first.", doc.id, u["id"].as_str().unwrap_or("")),
            )),
            None => Ok(()),
        }
    }
}

pub fn put_rule(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let (props, _) = parse_rule(&name(req), &body["properties"])?;
    child::put(ctx, req, props, check_all)
}

pub fn get_rule(ctx: &Ctx, req: &ArmRequest, default: bool) -> Result<Reply, ArmError> {
    if !default {
        return child::get::<RuleProperties>(ctx, req);
    }
    ctx.store().view(|r| {
        let nsg = parent_of(r, req, NSG_TYPE)?;
        let n = name(req);
        let rule = default_rules(nsg["id"].as_str().unwrap_or_default())
            .into_iter()
            .find(|d| d.name.eq_ignore_ascii_case(&n))
            .ok_or_else(|| not_found(req, DEFAULT_RULE_TYPE))?;
        Ok(Reply::ok(recoverite_arm::document::to_value(&rule)?))
    })
}

pub fn list_rules(ctx: &Ctx, req: &ArmRequest, default: bool) -> Result<Reply, ArmError> {
    child::list_reply::<RuleProperties>(ctx, req, |nid, rules| {
        if default {
            child::values(&default_rules(nid))
        } else {
            child::values(&rules)
        }
    })
}

pub fn delete_rule(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, NSG_TYPE, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 200,
               "sourceAddressPrefix": "VirtualNetwork", "sourcePortRange": "*",
               "destinationAddressPrefixes": ["10.0.1.0/24", "10.0.2.4"],
               "destinationPortRanges": ["443", "8000-8100"]})
    }

    #[test]
    fn a_rule_body_reads_into_typed_fields_and_back_into_the_rule_evaluated() {
        let (p, rule) = parse_rule("web", &body()).unwrap();
        assert_eq!(p.source_address_prefix.as_deref(), Some("VirtualNetwork"));
        assert!(p.source_address_prefixes.is_empty());
        assert_eq!(rule.destination_prefixes, ["10.0.1.0/24", "10.0.2.4"]);
        assert_eq!(rule.destination_ports.len(), 2);
        assert_eq!(
            (rule.access, rule.direction),
            (Access::Allow, Direction::Inbound)
        );
        // Stored and read back, the rule is the same rule.
        let stored: RuleProperties =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(stored.rule("web").unwrap(), rule);
        // Azure shows the plural forms even when empty.
        assert_eq!(
            serde_json::to_value(&p).unwrap()["sourcePortRanges"],
            json!([])
        );
    }

    #[test]
    fn each_field_that_cannot_be_a_rule_has_its_own_code() {
        let code = |k: &str, v: Value| {
            let mut b = body();
            b[k] = v;
            parse_rule("web", &b).unwrap_err().code().to_string()
        };
        assert_eq!(
            code("protocol", json!("Gre")),
            "SecurityRuleInvalidProtocol"
        );
        assert_eq!(code("protocol", Value::Null), "SecurityRuleInvalidProtocol");
        assert_eq!(code("access", json!("Maybe")), "SecurityRuleInvalidAccess");
        assert_eq!(code("direction", json!(3)), "SecurityRuleInvalidDirection");
        assert_eq!(
            code("priority", json!("high")),
            "SecurityRuleInvalidPriority"
        );
        assert_eq!(
            code("sourceAddressPrefix", json!("Nowhere")),
            "SecurityRuleInvalidAddressPrefix"
        );
        assert_eq!(
            code("destinationAddressPrefixes", json!([1])),
            "SecurityRuleInvalidAddressPrefix"
        );
        assert_eq!(
            code("destinationPortRanges", json!(["http"])),
            "SecurityRuleInvalidPortRange"
        );
        assert_eq!(
            code("sourcePortRange", Value::Null),
            "SecurityRuleInvalidPortRange"
        );
        assert_eq!(
            code("sourceApplicationSecurityGroups", json!([{"id": "/asg"}])),
            "SecurityRuleApplicationSecurityGroupsNotSupported"
        );
    }

    #[test]
    fn rules_of_one_group_are_checked_together() {
        let (p, _) = parse_rule("a", &body()).unwrap();
        assert!(check_all(&[("a".into(), p.clone())]).is_ok());
        let e = check_all(&[("a".into(), p.clone()), ("b".into(), p)]).unwrap_err();
        assert_eq!(e.code(), "SecurityRuleConflict");
    }

    #[test]
    fn default_rules_are_shown_as_azure_shows_them() {
        let d = default_rules(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n",
        );
        assert_eq!(d.len(), 6);
        assert_eq!(d[0].kind, DEFAULT_RULE_TYPE);
        assert!(d.iter().all(|r| r.properties.rule(&r.name).is_ok()));
        assert!(d[0].id.ends_with("/defaultSecurityRules/AllowVnetInBound"));
    }
}
