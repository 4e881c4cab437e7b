//! Network security groups and their rules.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_netcore::nsg::{self, Access, Direction, PortRange, Protocol, Rule};
use recoverite_netcore::tags;
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};

pub const NSG_TYPE: &str = "Microsoft.Network/networkSecurityGroups";
/// The linked action on this resource for whoever associates it with a subnet or NIC.
pub const JOIN: &str = "Microsoft.Network/networkSecurityGroups/join/action";
pub const RULE_TYPE: &str = "Microsoft.Network/networkSecurityGroups/securityRules";
pub const DEFAULT_RULE_TYPE: &str = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules";

fn strings(props: &Value, one: &str, many: &str) -> Vec<String> {
    let mut v: Vec<String> = props[many]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(s) = props[one].as_str() {
        v.insert(0, s.to_string());
    }
    v
}

fn bad_rule(code: &str, name: &str, msg: impl std::fmt::Display) -> ArmError {
    ArmError::bad_request(code, format!("Security rule {name} is not valid: {msg}"))
}

/// Reads a rule's properties as Azure validates them.
pub fn parse_rule(name: &str, props: &Value) -> Result<Rule, ArmError> {
    check_name("security rule", name)?;
    let protocol = props["protocol"]
        .as_str()
        .and_then(Protocol::parse)
        .ok_or_else(|| {
            bad_rule(
                "SecurityRuleInvalidProtocol",
                name,
                "protocol must be Tcp, Udp, Icmp, Esp, Ah or *.",
            )
        })?;
    let access = match props["access"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("allow") => Access::Allow,
        Some("deny") => Access::Deny,
        _ => {
            return Err(bad_rule(
                "SecurityRuleInvalidAccess",
                name,
                "access must be Allow or Deny.",
            ))
        }
    };
    let direction = match props["direction"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => Direction::Inbound,
        Some("outbound") => Direction::Outbound,
        _ => {
            return Err(bad_rule(
                "SecurityRuleInvalidDirection",
                name,
                "direction must be Inbound or Outbound.",
            ))
        }
    };
    let priority = props["priority"].as_u64().ok_or_else(|| {
        bad_rule(
            "SecurityRuleInvalidPriority",
            name,
            "priority must be a whole number from 100 to 4096.",
        )
    })? as u32;
    if props
        .get("sourceApplicationSecurityGroups")
        .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        || props
            .get("destinationApplicationSecurityGroups")
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(bad_rule("SecurityRuleApplicationSecurityGroupsNotSupported", name, "application security groups are not modelled by recoverite; use address prefixes or service tags."));
    }
    let prefixes = |one, many| -> Result<Vec<String>, ArmError> {
        let v = strings(props, one, many);
        if v.is_empty() {
            return Err(bad_rule(
                "SecurityRuleInvalidAddressPrefix",
                name,
                format!("{one} or {many} is required."),
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
    let ports = |one, many| -> Result<Vec<PortRange>, ArmError> {
        let v = strings(props, one, many);
        if v.is_empty() {
            return Err(bad_rule(
                "SecurityRuleInvalidPortRange",
                name,
                format!("{one} or {many} is required."),
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
        priority,
        direction,
        access,
        protocol,
        source_prefixes: prefixes("sourceAddressPrefix", "sourceAddressPrefixes")?,
        source_ports: ports("sourcePortRange", "sourcePortRanges")?,
        destination_prefixes: prefixes("destinationAddressPrefix", "destinationAddressPrefixes")?,
        destination_ports: ports("destinationPortRange", "destinationPortRanges")?,
    })
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

fn rule_doc(nsg_id: &str, name: &str, props: &Value, existing: Option<&Value>) -> Value {
    let rid = child_id(nsg_id, "securityRules", name);
    let mut doc = base_doc(
        &stored_id(existing, &rid),
        existing.and_then(|e| e["name"].as_str()).unwrap_or(name),
        RULE_TYPE,
    );
    let mut p = Map::new();
    for k in [
        "description",
        "protocol",
        "sourcePortRange",
        "sourcePortRanges",
        "destinationPortRange",
        "destinationPortRanges",
        "sourceAddressPrefix",
        "sourceAddressPrefixes",
        "destinationAddressPrefix",
        "destinationAddressPrefixes",
        "access",
        "priority",
        "direction",
    ] {
        if let Some(v) = props.get(k).filter(|v| !v.is_null()) {
            p.insert(k.into(), v.clone());
        }
    }
    for k in [
        "sourcePortRanges",
        "destinationPortRanges",
        "sourceAddressPrefixes",
        "destinationAddressPrefixes",
    ] {
        p.entry(k).or_insert(json!([]));
    }
    p.insert("provisioningState".into(), json!("Succeeded"));
    doc["properties"] = Value::Object(p);
    doc
}

fn default_rule_docs(nsg_id: &str) -> Vec<Value> {
    let desc = |n: &str| match n {
        "AllowVnetInBound" => "Allow inbound traffic from all VMs in VNET",
        "AllowAzureLoadBalancerInBound" => "Allow inbound traffic from azure load balancer",
        "DenyAllInBound" => "Deny all inbound traffic",
        "AllowVnetOutBound" => "Allow outbound traffic from all VMs to all VMs in VNET",
        "AllowInternetOutBound" => "Allow outbound traffic from all VMs to Internet",
        _ => "Deny all outbound traffic",
    };
    nsg::default_rules()
        .into_iter()
        .map(|r| {
            json!({
                "id": child_id(nsg_id, "defaultSecurityRules", &r.name),
                "name": r.name,
                "etag": etag(),
                "type": DEFAULT_RULE_TYPE,
                "properties": {
                    "description": desc(&r.name),
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": r.source_prefixes[0],
                    "destinationAddressPrefix": r.destination_prefixes[0],
                    "sourcePortRanges": [], "destinationPortRanges": [],
                    "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
                    "access": format!("{:?}", r.access),
                    "priority": r.priority,
                    "direction": format!("{:?}", r.direction),
                    "provisioningState": "Succeeded",
                }
            })
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

/// The custom rules of an NSG, parsed for evaluation.
pub fn rules_of(r: &impl Reader, nsg_id: &str) -> Result<Vec<Rule>, ArmError> {
    resource::list_children(r, nsg_id, "securityRules")?
        .iter()
        .map(|d| parse_rule(d["name"].as_str().unwrap_or_default(), &d["properties"]))
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
        let parsed = named_children(given.security_rules, "security rule", |_, _| Ok(()))?;
        let rules: Vec<Rule> = parsed
            .iter()
            .map(|(n, p)| parse_rule(n, p))
            .collect::<Result<_, _>>()?;
        check_rules(&rules)?;
        replace_children(tx, id, "securityRules", &parsed, rule_doc)?;
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
            Value::Array(resource::list_children(r, &nid, "securityRules")?);
        doc["properties"]["defaultSecurityRules"] = Value::Array(default_rule_docs(&nid));
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

fn nsg_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    parent_of(r, req, NSG_TYPE)
}

pub fn put_rule(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rn = name(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let rule = parse_rule(&rn, &props)?;
    ctx.store().write(|tx| {
        let nsg = nsg_of(tx, req)?;
        let nid = nsg["id"].as_str().unwrap_or_default().to_string();
        let mut rules: Vec<Rule> = rules_of(tx, &nid)?
            .into_iter()
            .filter(|r| !r.name.eq_ignore_ascii_case(&rn))
            .collect();
        rules.push(rule.clone());
        check_rules(&rules)?;
        let rid = child_id(&nid, "securityRules", &rn);
        let old = resource::get(tx, &rid)?;
        let doc = rule_doc(&nid, &rn, &props, old.as_ref());
        resource::put(tx, &rid, &doc)?;
        let op = common::op(ctx, &rid);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            old.is_none(),
            doc,
            &op,
            nsg["location"].as_str().unwrap_or_default(),
        ))
    })
}

pub fn get_rule(ctx: &Ctx, req: &ArmRequest, default: bool) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        let nsg = nsg_of(r, req)?;
        if default {
            let nid = nsg["id"].as_str().unwrap_or_default();
            let n = name(req);
            return default_rule_docs(nid)
                .into_iter()
                .find(|d| {
                    d["name"]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&n))
                })
                .map(Reply::ok)
                .ok_or_else(|| not_found(req, DEFAULT_RULE_TYPE));
        }
        resource::get(r, &req.path.id())?
            .map(Reply::ok)
            .ok_or_else(|| not_found(req, RULE_TYPE))
    })
}

pub fn list_rules(ctx: &Ctx, req: &ArmRequest, default: bool) -> Result<Reply, ArmError> {
    let nid = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if resource::get(r, &nid)?.is_none() {
            return Err(ArmError::resource_not_found(
                NSG_TYPE,
                &names(req)[0],
                req.path.resource_group.as_deref(),
            ));
        }
        Ok(if default {
            default_rule_docs(&nid)
        } else {
            resource::list_children(r, &nid, "securityRules")?
        })
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete_rule(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    delete_child(ctx, req, NSG_TYPE, |_, _| Ok(()))
}
