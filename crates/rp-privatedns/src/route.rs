//! Every private DNS zone request, parsed once into a [`Route`] that
//! declares its RBAC action.

use http::Method;

use recoverite_arm::{ArmError, ArmRequest, Endpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Put,
    Patch,
    Get,
    Delete,
    List,
}

/// The record types Azure private DNS serves, in `RECORD_TYPES` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Ptr,
    Soa,
    Srv,
    Txt,
}

impl RecordType {
    pub fn parse(s: &str) -> Option<RecordType> {
        use RecordType::*;
        Some(match s.to_ascii_uppercase().as_str() {
            "A" => A,
            "AAAA" => Aaaa,
            "CNAME" => Cname,
            "MX" => Mx,
            "PTR" => Ptr,
            "SOA" => Soa,
            "SRV" => Srv,
            "TXT" => Txt,
            _ => return None,
        })
    }

    /// As Azure spells it in paths and record set types.
    pub fn as_str(self) -> &'static str {
        crate::RECORD_TYPES[self as usize]
    }

    fn actions(self) -> [&'static str; 3] {
        macro_rules! rwd {
            ($t:literal) => {
                [
                    concat!("Microsoft.Network/privateDnsZones/", $t, "/read"),
                    concat!("Microsoft.Network/privateDnsZones/", $t, "/write"),
                    concat!("Microsoft.Network/privateDnsZones/", $t, "/delete"),
                ]
            };
        }
        match self {
            RecordType::A => rwd!("A"),
            RecordType::Aaaa => rwd!("AAAA"),
            RecordType::Cname => rwd!("CNAME"),
            RecordType::Mx => rwd!("MX"),
            RecordType::Ptr => rwd!("PTR"),
            RecordType::Soa => rwd!("SOA"),
            RecordType::Srv => rwd!("SRV"),
            RecordType::Txt => rwd!("TXT"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Zone(Verb),
    Link(Verb),
    RecordSet(RecordType, Verb),
    /// `privateDnsZones/{zone}/ALL`: every record set of the zone.
    ListAllRecordSets,
}

impl Endpoint for Route {
    fn action(&self) -> &'static str {
        let pick = |[read, write, delete]: [&'static str; 3], verb: &Verb| match verb {
            Verb::Get | Verb::List => read,
            Verb::Put | Verb::Patch => write,
            Verb::Delete => delete,
        };
        match self {
            Route::Zone(v) => pick(
                [
                    "Microsoft.Network/privateDnsZones/read",
                    "Microsoft.Network/privateDnsZones/write",
                    "Microsoft.Network/privateDnsZones/delete",
                ],
                v,
            ),
            Route::Link(v) => pick(
                [
                    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/read",
                    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write",
                    "Microsoft.Network/privateDnsZones/virtualNetworkLinks/delete",
                ],
                v,
            ),
            Route::RecordSet(t, v) => pick(t.actions(), v),
            Route::ListAllRecordSets => "Microsoft.Network/privateDnsZones/ALL/read",
        }
    }

    fn is_list(&self) -> bool {
        matches!(
            self,
            Route::Zone(Verb::List)
                | Route::Link(Verb::List)
                | Route::RecordSet(_, Verb::List)
                | Route::ListAllRecordSets
        )
    }
}

/// (method, path) → route; a served type with a method it does not take is
/// ARM's 405.
pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let types = req.types_lower()?;
    let refused = || ArmError::method_not_allowed(req.method.as_str());
    let verb = match (p.is_resource(), &req.method) {
        (true, &Method::PUT) => Verb::Put,
        (true, &Method::PATCH) => Verb::Patch,
        (true, &Method::GET) => Verb::Get,
        (true, &Method::DELETE) => Verb::Delete,
        (false, &Method::GET) => Verb::List,
        _ => return Err(refused()),
    };
    match types
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["privatednszones"] => Ok(Route::Zone(verb)),
        ["privatednszones", "virtualnetworklinks"] => Ok(Route::Link(verb)),
        ["privatednszones", "all"] if verb == Verb::List => Ok(Route::ListAllRecordSets),
        ["privatednszones", t] => match RecordType::parse(t) {
            Some(t) => Ok(Route::RecordSet(t, verb)),
            None => Err(refused()),
        },
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use recoverite_arm::endpoint_checks::{assert_declared_actions, parse_any, request};

    const Z: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateDnsZones/privatelink.blob.core.windows.net";

    #[test]
    fn declared_actions_are_arms() {
        use Method as M;
        let mut cases: Vec<(Method, String)> = vec![
            (
                M::GET,
                "/subscriptions/s/providers/Microsoft.Network/privateDnsZones".into(),
            ),
            (M::GET, format!("{Z}/ALL")),
        ];
        for one in [Z.to_string(), format!("{Z}/virtualNetworkLinks/l")] {
            for m in [M::PUT, M::PATCH, M::GET, M::DELETE] {
                cases.push((m, one.clone()));
            }
        }
        cases.push((M::GET, format!("{Z}/virtualNetworkLinks")));
        for t in crate::RECORD_TYPES {
            for m in [M::PUT, M::PATCH, M::GET, M::DELETE] {
                cases.push((m, format!("{Z}/{t}/r")));
            }
            cases.push((M::GET, format!("{Z}/{t}")));
        }
        let seen = assert_declared_actions(&crate::PrivateDnsProvider.info_of(), &cases, parse);
        assert_eq!(seen.len(), 2 * 5 + 8 * 5 + 1, "every route is covered");
    }

    #[test]
    fn record_types_round_trip_and_all_is_only_listed() {
        for t in crate::RECORD_TYPES {
            assert_eq!(RecordType::parse(t).unwrap().as_str(), *t);
        }
        assert_eq!(
            parse(&request(Method::GET, &format!("{Z}/ALL/x")))
                .unwrap_err()
                .status,
            405
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn parse_never_panics(rest in "(/[A-Za-z0-9%._~;-]{0,10}){0,5}", m in 0..6u8) {
            parse_any(Z, &rest, m, |r| {
                let _ = parse(r);
            });
        }
    }
}
