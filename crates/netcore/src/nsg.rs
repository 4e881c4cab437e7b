//! Network security group rules and their evaluation, as Azure evaluates
//! them: rules of one direction in priority order (lowest number first), the
//! first match decides; Azure's default rules (65000+) close every list.

use serde::{Deserialize, Serialize};

use crate::tags::{prefix_matches, Endpoint, TagContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Esp,
    Ah,
    Any,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "esp" => Protocol::Esp,
            "ah" => Protocol::Ah,
            "*" | "all" | "any" => Protocol::Any,
            _ => return None,
        })
    }
    fn covers(self, p: Protocol) -> bool {
        self == Protocol::Any || self == p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { from: 0, to: 65535 };

    /// `*`, `443` or `1000-2000`.
    pub fn parse(s: &str) -> Option<PortRange> {
        let s = s.trim();
        if s == "*" {
            return Some(PortRange::ANY);
        }
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (from, to) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (from <= to).then_some(PortRange { from, to })
    }

    fn contains(&self, p: u16) -> bool {
        self.from <= p && p <= self.to
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub priority: u32,
    pub direction: Direction,
    pub access: Access,
    pub protocol: Protocol,
    pub source_prefixes: Vec<String>,
    pub source_ports: Vec<PortRange>,
    pub destination_prefixes: Vec<String>,
    pub destination_ports: Vec<PortRange>,
}

/// One connection attempt, from the point of view of the NSG being evaluated.
#[derive(Debug, Clone)]
pub struct Flow {
    pub direction: Direction,
    pub protocol: Protocol,
    pub source: Endpoint,
    pub source_port: u16,
    pub destination: Endpoint,
    pub destination_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub access: Access,
    /// `securityRules/NAME` or `defaultSecurityRules/NAME`, as Network Watcher reports it.
    pub rule: String,
}

pub const MIN_PRIORITY: u32 = 100;
pub const MAX_PRIORITY: u32 = 4096;

fn default(
    name: &str,
    priority: u32,
    direction: Direction,
    src: &str,
    dst: &str,
    access: Access,
) -> Rule {
    Rule {
        name: name.to_string(),
        priority,
        direction,
        access,
        protocol: Protocol::Any,
        source_prefixes: vec![src.to_string()],
        source_ports: vec![PortRange::ANY],
        destination_prefixes: vec![dst.to_string()],
        destination_ports: vec![PortRange::ANY],
    }
}

/// Azure's default security rules.
pub fn default_rules() -> Vec<Rule> {
    use Access::*;
    use Direction::*;
    vec![
        default(
            "AllowVnetInBound",
            65000,
            Inbound,
            "VirtualNetwork",
            "VirtualNetwork",
            Allow,
        ),
        default(
            "AllowAzureLoadBalancerInBound",
            65001,
            Inbound,
            "AzureLoadBalancer",
            "*",
            Allow,
        ),
        default("DenyAllInBound", 65500, Inbound, "*", "*", Deny),
        default(
            "AllowVnetOutBound",
            65000,
            Outbound,
            "VirtualNetwork",
            "VirtualNetwork",
            Allow,
        ),
        default(
            "AllowInternetOutBound",
            65001,
            Outbound,
            "*",
            "Internet",
            Allow,
        ),
        default("DenyAllOutBound", 65500, Outbound, "*", "*", Deny),
    ]
}

/// Priorities must be 100–4096 and unique per direction.
pub fn validate(rules: &[Rule]) -> Result<(), String> {
    for r in rules {
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&r.priority) {
            return Err(format!(
                "Security rule {} has invalid Priority {}. Value provided: {}. Allowed range {}-{}.",
                r.name, r.priority, r.priority, MIN_PRIORITY, MAX_PRIORITY
            ));
        }
    }
    for (i, a) in rules.iter().enumerate() {
        if let Some(b) = rules[i + 1..]
            .iter()
            .find(|b| b.priority == a.priority && b.direction == a.direction)
        {
            return Err(format!(
                "Security rule {} conflicts with rule {}. Rules cannot have the same Priority and Direction.",
                a.name, b.name
            ));
        }
    }
    Ok(())
}

impl Rule {
    pub fn matches(&self, f: &Flow, ctx: &TagContext) -> bool {
        self.direction == f.direction
            && self.protocol.covers(f.protocol)
            && self.source_ports.iter().any(|p| p.contains(f.source_port))
            && self
                .destination_ports
                .iter()
                .any(|p| p.contains(f.destination_port))
            && self
                .source_prefixes
                .iter()
                .any(|p| prefix_matches(p, &f.source, ctx))
            && self
                .destination_prefixes
                .iter()
                .any(|p| prefix_matches(p, &f.destination, ctx))
    }
}

/// Evaluates one NSG (its own rules, then the defaults).
pub fn evaluate(custom: &[Rule], flow: &Flow, ctx: &TagContext) -> Decision {
    let mut ordered: Vec<&Rule> = custom
        .iter()
        .filter(|r| r.direction == flow.direction)
        .collect();
    ordered.sort_by_key(|r| r.priority);
    if let Some(r) = ordered.into_iter().find(|r| r.matches(flow, ctx)) {
        return Decision {
            access: r.access,
            rule: format!("securityRules/{}", r.name),
        };
    }
    let defaults = default_rules();
    let r = defaults
        .iter()
        .filter(|r| r.direction == flow.direction)
        .find(|r| r.matches(flow, ctx))
        .expect("the DenyAll default rule matches every flow");
    Decision {
        access: r.access,
        rule: format!("defaultSecurityRules/{}", r.name),
    }
}

/// A pre-sorted rule list for repeated evaluation (the gateway's hot path).
#[derive(Debug, Clone)]
pub struct CompiledNsg {
    inbound: Vec<Rule>,
    outbound: Vec<Rule>,
}

impl CompiledNsg {
    pub fn new(custom: &[Rule]) -> CompiledNsg {
        let mut all: Vec<Rule> = custom.to_vec();
        all.extend(default_rules());
        all.sort_by_key(|r| r.priority);
        let (inbound, outbound) = all
            .into_iter()
            .partition(|r| r.direction == Direction::Inbound);
        CompiledNsg { inbound, outbound }
    }

    pub fn evaluate(&self, flow: &Flow, ctx: &TagContext) -> Decision {
        let list = match flow.direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        };
        let r = list
            .iter()
            .find(|r| r.matches(flow, ctx))
            .expect("DenyAll closes the list");
        let kind = if r.priority >= 65000 {
            "defaultSecurityRules"
        } else {
            "securityRules"
        };
        Decision {
            access: r.access,
            rule: format!("{kind}/{}", r.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn storage_east() -> Endpoint {
        Endpoint::Service {
            ip: "20.60.1.1".parse().unwrap(),
            service: "Storage".into(),
            region: Some("eastus".into()),
        }
    }

    fn vm() -> Endpoint {
        Endpoint::Private {
            ip: "10.0.1.4".parse().unwrap(),
        }
    }

    fn ctx() -> TagContext {
        TagContext {
            virtual_network: vec!["10.0.0.0/16".parse().unwrap()],
        }
    }

    fn out(dst: Endpoint, port: u16) -> Flow {
        Flow {
            direction: Direction::Outbound,
            protocol: Protocol::Tcp,
            source: vm(),
            source_port: 50000,
            destination: dst,
            destination_port: port,
        }
    }

    fn rule(name: &str, priority: u32, access: Access, dst: &str, port: &str) -> Rule {
        Rule {
            name: name.into(),
            priority,
            direction: Direction::Outbound,
            access,
            protocol: Protocol::Tcp,
            source_prefixes: vec!["*".into()],
            source_ports: vec![PortRange::ANY],
            destination_prefixes: vec![dst.into()],
            destination_ports: vec![PortRange::parse(port).unwrap()],
        }
    }

    #[test]
    fn defaults_allow_internet_and_vnet_outbound() {
        let d = evaluate(&[], &out(storage_east(), 443), &ctx());
        assert_eq!(
            d,
            Decision {
                access: Access::Allow,
                rule: "defaultSecurityRules/AllowInternetOutBound".into()
            }
        );
        let d = evaluate(
            &[],
            &out(
                Endpoint::Private {
                    ip: "10.0.2.9".parse().unwrap(),
                },
                22,
            ),
            &ctx(),
        );
        assert_eq!(d.rule, "defaultSecurityRules/AllowVnetOutBound");
    }

    #[test]
    fn the_document_002_pattern() {
        // Deny Internet, then allow Storage.EastUS on 443 at a lower number.
        let mut rules = vec![rule("deny-internet", 4000, Access::Deny, "Internet", "*")];
        let d = evaluate(&rules, &out(storage_east(), 443), &ctx());
        assert_eq!(
            (d.access, d.rule.as_str()),
            (Access::Deny, "securityRules/deny-internet")
        );
        rules.push(rule(
            "allow-storage",
            100,
            Access::Allow,
            "Storage.EastUS",
            "443",
        ));
        assert_eq!(
            evaluate(&rules, &out(storage_east(), 443), &ctx()).access,
            Access::Allow
        );
        assert_eq!(
            evaluate(&rules, &out(storage_east(), 80), &ctx()).access,
            Access::Deny
        );
        let compiled = CompiledNsg::new(&rules);
        assert_eq!(
            compiled.evaluate(&out(storage_east(), 443), &ctx()),
            evaluate(&rules, &out(storage_east(), 443), &ctx())
        );
    }

    #[test]
    fn priority_rules() {
        let a = rule("a", 100, Access::Allow, "*", "*");
        assert!(
            validate(&[a.clone(), rule("b", 100, Access::Deny, "*", "*")])
                .unwrap_err()
                .contains("same Priority")
        );
        assert!(validate(&[rule("c", 99, Access::Deny, "*", "*")])
            .unwrap_err()
            .contains("Allowed range 100-4096"));
        let mut inbound = a.clone();
        inbound.direction = Direction::Inbound;
        assert!(validate(&[a, inbound]).is_ok());
    }

    proptest! {
        // The compiled form decides exactly as the reference evaluation, and
        // the lowest-numbered matching rule always wins.
        #[test]
        fn compiled_equals_reference(prios in proptest::collection::btree_set(100u32..=4096, 0..30),
                                     accesses in proptest::collection::vec(any::<bool>(), 30),
                                     ports in proptest::collection::vec(0u16..1000, 30),
                                     port in 0u16..1000) {
            let rules: Vec<Rule> = prios.iter().enumerate().map(|(i, p)| {
                let access = if accesses[i] { Access::Allow } else { Access::Deny };
                let dst = if i % 3 == 0 { "Storage.EastUS" } else if i % 3 == 1 { "Internet" } else { "10.0.0.0/8" };
                rule(&format!("r{i}"), *p, access, dst, &ports[i].to_string())
            }).collect();
            let flow = out(storage_east(), port);
            let reference = evaluate(&rules, &flow, &ctx());
            prop_assert_eq!(CompiledNsg::new(&rules).evaluate(&flow, &ctx()), reference.clone());
            let first = rules.iter().filter(|r| r.matches(&flow, &ctx())).min_by_key(|r| r.priority);
            if let Some(r) = first {
                prop_assert_eq!(reference.rule, format!("securityRules/{}", r.name));
            }
        }
    }
}
