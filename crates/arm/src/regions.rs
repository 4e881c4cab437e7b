//! Azure regions: name, display name, the short geo code used in private-link
//! FQDNs (`privatelink.{geo}.backup.windowsazure.com`, `{id}-asr-pod01-…{geo}…`)
//! and the paired region.

use crate::error::ArmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub display_name: &'static str,
    pub geo_code: &'static str,
    pub paired: Option<&'static str>,
    /// Geography group as the locations API reports it.
    pub geography: &'static str,
}

macro_rules! regions {
    ($( $name:literal, $display:literal, $geo:literal, $pair:expr, $geography:literal; )*) => {
        pub const REGIONS: &[Region] = &[
            $( Region { name: $name, display_name: $display, geo_code: $geo, paired: $pair, geography: $geography }, )*
        ];
    };
}

regions! {
    "eastus", "East US", "eus", Some("westus"), "US";
    "eastus2", "East US 2", "eus2", Some("centralus"), "US";
    "centralus", "Central US", "cus", Some("eastus2"), "US";
    "northcentralus", "North Central US", "ncus", Some("southcentralus"), "US";
    "southcentralus", "South Central US", "scus", Some("northcentralus"), "US";
    "westcentralus", "West Central US", "wcus", Some("westus2"), "US";
    "westus", "West US", "wus", Some("eastus"), "US";
    "westus2", "West US 2", "wus2", Some("westcentralus"), "US";
    "westus3", "West US 3", "wus3", Some("eastus"), "US";
    "canadacentral", "Canada Central", "cnc", Some("canadaeast"), "Canada";
    "canadaeast", "Canada East", "cne", Some("canadacentral"), "Canada";
    "brazilsouth", "Brazil South", "brs", Some("southcentralus"), "Brazil";
    "northeurope", "North Europe", "ne", Some("westeurope"), "Europe";
    "westeurope", "West Europe", "we", Some("northeurope"), "Europe";
    "uksouth", "UK South", "uks", Some("ukwest"), "United Kingdom";
    "ukwest", "UK West", "ukw", Some("uksouth"), "United Kingdom";
    "francecentral", "France Central", "frc", Some("francesouth"), "France";
    "francesouth", "France South", "frs", Some("francecentral"), "France";
    "germanywestcentral", "Germany West Central", "gwc", Some("germanynorth"), "Germany";
    "germanynorth", "Germany North", "gn", Some("germanywestcentral"), "Germany";
    "switzerlandnorth", "Switzerland North", "szn", Some("switzerlandwest"), "Switzerland";
    "switzerlandwest", "Switzerland West", "szw", Some("switzerlandnorth"), "Switzerland";
    "norwayeast", "Norway East", "nwe", Some("norwaywest"), "Norway";
    "norwaywest", "Norway West", "nww", Some("norwayeast"), "Norway";
    "swedencentral", "Sweden Central", "sdc", None, "Sweden";
    "polandcentral", "Poland Central", "plc", None, "Poland";
    "italynorth", "Italy North", "itn", None, "Italy";
    "spaincentral", "Spain Central", "spc", None, "Spain";
    "eastasia", "East Asia", "ea", Some("southeastasia"), "Asia Pacific";
    "southeastasia", "Southeast Asia", "sea", Some("eastasia"), "Asia Pacific";
    "japaneast", "Japan East", "jpe", Some("japanwest"), "Japan";
    "japanwest", "Japan West", "jpw", Some("japaneast"), "Japan";
    "koreacentral", "Korea Central", "krc", Some("koreasouth"), "Korea";
    "koreasouth", "Korea South", "krs", Some("koreacentral"), "Korea";
    "australiaeast", "Australia East", "ae", Some("australiasoutheast"), "Australia";
    "australiasoutheast", "Australia Southeast", "ase", Some("australiaeast"), "Australia";
    "australiacentral", "Australia Central", "acl", Some("australiacentral2"), "Australia";
    "australiacentral2", "Australia Central 2", "acl2", Some("australiacentral"), "Australia";
    "centralindia", "Central India", "inc", Some("southindia"), "India";
    "southindia", "South India", "ins", Some("centralindia"), "India";
    "westindia", "West India", "inw", Some("southindia"), "India";
    "uaenorth", "UAE North", "uan", Some("uaecentral"), "UAE";
    "uaecentral", "UAE Central", "uac", Some("uaenorth"), "UAE";
    "southafricanorth", "South Africa North", "san", Some("southafricawest"), "South Africa";
    "southafricawest", "South Africa West", "saw", Some("southafricanorth"), "South Africa";
    "qatarcentral", "Qatar Central", "qac", None, "Qatar";
    "israelcentral", "Israel Central", "ilc", None, "Israel";
    "mexicocentral", "Mexico Central", "mxc", None, "Mexico";
    "newzealandnorth", "New Zealand North", "nzn", None, "New Zealand";
}

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Looks a location up by name or display name ("East US", "eastus", "EASTUS").
pub fn find(location: &str) -> Option<&'static Region> {
    let f = fold(location);
    REGIONS.iter().find(|r| r.name == f)
}

pub fn by_geo_code(code: &str) -> Option<&'static Region> {
    REGIONS
        .iter()
        .find(|r| r.geo_code.eq_ignore_ascii_case(code))
}

/// Resolves a regional location or refuses it the way ARM does.
pub fn require(location: &str, resource_type: &str) -> Result<&'static Region, ArmError> {
    find(location).ok_or_else(|| {
        ArmError::bad_request(
            "LocationNotAvailableForResourceType",
            format!(
                "The provided location '{location}' is not available for resource type '{resource_type}'. List of available regions for the resource type is '{}'.",
                all_names().join(",")
            ),
        )
    })
}

pub fn all_names() -> Vec<&'static str> {
    REGIONS.iter().map(|r| r.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_pairs() {
        assert_eq!(find("East US").unwrap().geo_code, "eus");
        assert_eq!(find("centralus").unwrap().geo_code, "cus");
        assert_eq!(find("northeurope").unwrap().geo_code, "ne");
        assert_eq!(find("WestEurope").unwrap().geo_code, "we");
        assert_eq!(find("southcentralus").unwrap().geo_code, "scus");
        assert!(find("atlantis").is_none());
        for r in REGIONS {
            if let Some(p) = r.paired {
                assert!(find(p).is_some(), "pair of {} is a known region", r.name);
            }
        }
    }

    #[test]
    fn geo_codes_are_unique() {
        let mut codes: Vec<&str> = REGIONS.iter().map(|r| r.geo_code).collect();
        codes.sort();
        let n = codes.len();
        codes.dedup();
        assert_eq!(n, codes.len());
    }
}
