//! Users, resources, actions and policies as Apache's ACL 2.0 names them, with their wire
//! forms (`UserInfo`, `AclInfo`: the bodies of codes 3001–3010, and what the tables store).

use std::net::IpAddr;

pub use ferromq_protocol::auth::{AclInfo, PolicyEntryInfo, PolicyInfo, UserInfo};
use ipnet::IpNet;

/// Parses one of an enum's names, ignoring case as Apache's `getByName` does.
fn by_name<T: Copy>(all: &[(T, &str)], name: &str) -> Option<T> {
    all.iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(v, _)| *v)
}

fn name_of<T: Copy + PartialEq>(all: &[(T, &'static str)], value: T) -> &'static str {
    all.iter().find(|(v, _)| *v == value).map_or("", |(_, n)| n)
}

macro_rules! named {
    ($ty:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty { $($variant),+ }

        impl $ty {
            const NAMES: &'static [($ty, &'static str)] = &[$(($ty::$variant, $name)),+];

            /// Apache's name for it.
            pub fn name(self) -> &'static str {
                name_of(Self::NAMES, self)
            }

            /// By Apache's name, in any case.
            pub fn parse(name: &str) -> Option<Self> {
                by_name(Self::NAMES, name)
            }

            /// Every name, for error messages.
            pub fn names() -> String {
                Self::NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

named!(UserType { Super = "Super", Normal = "Normal" });
named!(UserStatus { Enable = "enable", Disable = "disable" });
named!(Decision { Allow = "Allow", Deny = "Deny" });
named!(PolicyType { Custom = "Custom", Default = "Default" });
named!(Action {
    All = "All",
    Any = "Any",
    Pub = "Pub",
    Sub = "Sub",
    Create = "Create",
    Update = "Update",
    Delete = "Delete",
    Get = "Get",
    List = "List",
});
named!(ResourceType {
    Cluster = "Cluster",
    Namespace = "Namespace",
    Topic = "Topic",
    Group = "Group",
});

/// A user: who signs requests (the user name is the clients' access key, the password
/// their secret key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: String,
    pub user_type: UserType,
    pub status: UserStatus,
}

impl User {
    pub fn info(&self) -> UserInfo {
        UserInfo {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            user_type: Some(self.user_type.name().into()),
            user_status: Some(self.status.name().into()),
        }
    }
}

/// Which names of a resource type a policy entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// `Topic:*`
    Any,
    /// `Topic:orders`
    Literal(String),
    /// `Topic:orders-*`
    Prefixed(String),
}

/// What a policy entry is about: `*` (everything) or a type and a name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Any,
    Of(ResourceType, NamePattern),
}

impl Resource {
    /// Parses Apache's resource key (`*`, `Topic:*`, `Topic:name`, `Group:prefix*`).
    pub fn parse(key: &str) -> Result<Self, String> {
        let key = key.trim();
        if key == "*" {
            return Ok(Resource::Any);
        }
        let (kind, name) = key.split_once(':').ok_or_else(|| {
            format!(
                "the resource {key:?} is not * or Type:name (Type one of {})",
                ResourceType::names()
            )
        })?;
        if kind.eq_ignore_ascii_case("Any") {
            return Ok(Resource::Any);
        }
        let kind = ResourceType::parse(kind).ok_or_else(|| {
            format!(
                "the resource type of {key:?} is not one of Any, {}",
                ResourceType::names()
            )
        })?;
        let pattern = match name {
            "" => return Err(format!("the resource {key:?} names nothing")),
            "*" => NamePattern::Any,
            n => match n.strip_suffix('*') {
                Some(prefix) => NamePattern::Prefixed(prefix.to_string()),
                None => NamePattern::Literal(n.to_string()),
            },
        };
        Ok(Resource::Of(kind, pattern))
    }

    /// Apache's resource key.
    pub fn key(&self) -> String {
        match self {
            Resource::Any => "*".into(),
            Resource::Of(kind, NamePattern::Any) => format!("{}:*", kind.name()),
            Resource::Of(kind, NamePattern::Literal(n)) => format!("{}:{n}", kind.name()),
            Resource::Of(kind, NamePattern::Prefixed(p)) => format!("{}:{p}*", kind.name()),
        }
    }

    fn covers(&self, kind: ResourceType, name: &str) -> bool {
        match self {
            Resource::Any => true,
            Resource::Of(k, _) if *k != kind => false,
            Resource::Of(_, NamePattern::Any) => true,
            Resource::Of(_, NamePattern::Literal(n)) => n == name,
            Resource::Of(_, NamePattern::Prefixed(p)) => name.starts_with(p.as_str()),
        }
    }

    /// Rank for choosing among matching entries, most specific first (Apache's
    /// `AclAuthorizationHandler.comparePolicyEntries`): a typed resource before `*`, a
    /// literal name before a prefix before any name, a longer prefix before a shorter.
    fn specificity(&self) -> (u8, u8, std::cmp::Reverse<usize>) {
        match self {
            Resource::Any => (1, 2, std::cmp::Reverse(0)),
            Resource::Of(_, NamePattern::Literal(_)) => (0, 0, std::cmp::Reverse(0)),
            Resource::Of(_, NamePattern::Prefixed(p)) => (0, 1, std::cmp::Reverse(p.len())),
            Resource::Of(_, NamePattern::Any) => (0, 2, std::cmp::Reverse(0)),
        }
    }
}

/// One grant or refusal: a resource, the actions, where from, allow or deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    pub resource: Resource,
    pub actions: Vec<Action>,
    /// Empty: from anywhere.
    pub source_ips: Vec<String>,
    pub decision: Decision,
}

impl PolicyEntry {
    fn matches(&self, request: &Request<'_>) -> bool {
        let (kind, name) = request.resource;
        self.resource.covers(kind, name)
            && !self.actions.is_empty()
            && (request.actions.contains(&Action::Any)
                || request
                    .actions
                    .iter()
                    .any(|a| self.actions.contains(a) || self.actions.contains(&Action::All)))
            && (self.source_ips.is_empty()
                || request
                    .source_ip
                    .is_some_and(|ip| self.source_ips.iter().any(|range| ip_in_range(ip, range))))
    }
}

/// A source address: one address or a CIDR range, as Apache's `IPAddressUtils` takes them.
pub fn valid_source_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok() || text.parse::<IpNet>().is_ok()
}

fn ip_in_range(ip: IpAddr, range: &str) -> bool {
    let ip = ip.to_canonical();
    match range.parse::<IpAddr>() {
        Ok(single) => single == ip,
        Err(_) => range.parse::<IpNet>().is_ok_and(|net| net.contains(&ip)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub policy_type: PolicyType,
    pub entries: Vec<PolicyEntry>,
}

/// A subject's policies (at most one of each type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// `User:<name>`.
    pub subject: String,
    pub policies: Vec<Policy>,
}

impl Acl {
    /// Apache's `Acl.updatePolicy`: a policy of a new type is added; in one it has, an entry
    /// for the same resource is replaced and others are added.
    pub fn merge(&mut self, policies: Vec<Policy>) {
        for new in policies {
            match self
                .policies
                .iter_mut()
                .find(|p| p.policy_type == new.policy_type)
            {
                None => self.policies.push(new),
                Some(old) => {
                    for entry in new.entries {
                        match old
                            .entries
                            .iter_mut()
                            .find(|e| e.resource == entry.resource)
                        {
                            Some(slot) => *slot = entry,
                            None => old.entries.push(entry),
                        }
                    }
                }
            }
        }
    }

    /// Removes the entry for `resource` from the policy of `policy_type`, and the policy if
    /// that was its last entry.
    pub fn remove(&mut self, policy_type: PolicyType, resource: &Resource) {
        if let Some(policy) = self
            .policies
            .iter_mut()
            .find(|p| p.policy_type == policy_type)
        {
            policy.entries.retain(|e| &e.resource != resource);
        }
        self.policies.retain(|p| !p.entries.is_empty());
    }

    /// The entry that decides `request`: among the custom policy's matching entries, else
    /// the default policy's, the most specific, a deny before an allow.
    pub fn deciding_entry(&self, request: &Request<'_>) -> Option<&PolicyEntry> {
        [PolicyType::Custom, PolicyType::Default]
            .into_iter()
            .find_map(|policy_type| {
                self.policies
                    .iter()
                    .filter(|p| p.policy_type == policy_type)
                    .flat_map(|p| &p.entries)
                    .filter(|e| e.matches(request))
                    .min_by_key(|e| (e.resource.specificity(), e.decision != Decision::Deny))
            })
    }

    pub fn info(&self) -> AclInfo {
        AclInfo {
            subject: Some(self.subject.clone()),
            policies: Some(
                self.policies
                    .iter()
                    .map(|p| PolicyInfo {
                        policy_type: Some(p.policy_type.name().into()),
                        entries: Some(
                            p.entries
                                .iter()
                                .map(|e| PolicyEntryInfo {
                                    resource: Some(e.resource.key()),
                                    actions: Some(
                                        e.actions.iter().map(|a| a.name().to_string()).collect(),
                                    ),
                                    source_ips: (!e.source_ips.is_empty())
                                        .then(|| e.source_ips.clone()),
                                    decision: Some(e.decision.name().into()),
                                })
                                .collect(),
                        ),
                    })
                    .collect(),
            ),
        }
    }
}

/// What one request asks of one resource.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub resource: (ResourceType, &'a str),
    pub actions: &'a [Action],
    pub source_ip: Option<IpAddr>,
}

/// Validates an `AclInfo` as Apache's `AuthorizationMetadataManagerImpl.validate` does
/// (a missing policy type is `Custom`), naming what is wrong; its subject, else `subject`,
/// owns the policies. Unknown names are refused where Apache drops them silently.
pub fn acl_from_info(info: &AclInfo, subject: &str) -> Result<Acl, String> {
    let subject = info
        .subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(subject);
    let subject = parse_subject(subject)?;
    let infos = info.policies.as_deref().unwrap_or_default();
    if infos.is_empty() {
        return Err("The policies is empty.".into());
    }
    let mut policies: Vec<Policy> = Vec::new();
    for info in infos {
        let policy_type = match info.policy_type.as_deref().filter(|t| !t.trim().is_empty()) {
            None => PolicyType::Custom,
            Some(t) => PolicyType::parse(t).ok_or_else(|| {
                format!(
                    "The policy type {t:?} is not one of {}.",
                    PolicyType::names()
                )
            })?,
        };
        let entries = info.entries.as_deref().unwrap_or_default();
        if entries.is_empty() {
            return Err("The policy entries is empty.".into());
        }
        let entries = entries
            .iter()
            .map(entry_from_info)
            .collect::<Result<Vec<_>, _>>()?;
        policies.push(Policy {
            policy_type,
            entries,
        });
    }
    let mut acl = Acl {
        subject,
        policies: Vec::new(),
    };
    // Two policies of one type in a body merge, as they would on the broker's table.
    acl.merge(policies);
    Ok(acl)
}

fn entry_from_info(info: &PolicyEntryInfo) -> Result<PolicyEntry, String> {
    let resource = info
        .resource
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .ok_or("The resource is null.")?;
    let resource = Resource::parse(resource)?;
    let actions = info.actions.as_deref().unwrap_or_default();
    if actions.is_empty() {
        return Err("The actions is empty.".into());
    }
    let actions = actions
        .iter()
        .map(|a| {
            Action::parse(a)
                .ok_or_else(|| format!("The action {a:?} is not one of {}.", Action::names()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if actions.contains(&Action::Any) {
        return Err("The actions can not be Any.".into());
    }
    let source_ips: Vec<String> = info.source_ips.clone().unwrap_or_default();
    for ip in &source_ips {
        if ip.trim().is_empty() {
            return Err("The source ip is empty.".into());
        }
        if !valid_source_ip(ip) {
            return Err(format!("The source ip {ip:?} is invalid."));
        }
    }
    let decision = info
        .decision
        .as_deref()
        .and_then(Decision::parse)
        .ok_or("The decision is null or illegal.")?;
    Ok(PolicyEntry {
        resource,
        actions,
        source_ips,
        decision,
    })
}

/// `User:<name>` (the one subject type Apache has); the name is what follows.
pub fn parse_subject(subject: &str) -> Result<String, String> {
    match subject.trim().split_once(':') {
        Some((kind, name)) if kind.eq_ignore_ascii_case("User") && !name.trim().is_empty() => {
            Ok(format!("User:{}", name.trim()))
        }
        _ => Err(format!("The subject {subject:?} is not User:<username>.")),
    }
}

/// The user name of a `User:<name>` subject.
pub fn subject_user(subject: &str) -> &str {
    subject.split_once(':').map_or(subject, |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(resource: &str, actions: &[&str], ips: &[&str], decision: &str) -> PolicyEntryInfo {
        PolicyEntryInfo {
            resource: Some(resource.into()),
            actions: Some(actions.iter().map(|a| a.to_string()).collect()),
            source_ips: (!ips.is_empty()).then(|| ips.iter().map(|a| a.to_string()).collect()),
            decision: Some(decision.into()),
        }
    }

    fn acl(custom: Vec<PolicyEntryInfo>, default: Vec<PolicyEntryInfo>) -> Acl {
        let mut policies = vec![PolicyInfo {
            policy_type: None,
            entries: Some(custom),
        }];
        if !default.is_empty() {
            policies.push(PolicyInfo {
                policy_type: Some("Default".into()),
                entries: Some(default),
            });
        }
        acl_from_info(
            &AclInfo {
                subject: None,
                policies: Some(policies),
            },
            "User:alice",
        )
        .unwrap()
    }

    fn decide(
        acl: &Acl,
        kind: ResourceType,
        name: &str,
        actions: &[Action],
        ip: &str,
    ) -> Option<Decision> {
        acl.deciding_entry(&Request {
            resource: (kind, name),
            actions,
            source_ip: Some(ip.parse().unwrap()),
        })
        .map(|e| e.decision)
    }

    #[test]
    fn the_most_specific_entry_decides_and_deny_wins_a_tie() {
        let acl = acl(
            vec![
                entry("Topic:*", &["Pub"], &[], "Allow"),
                entry("Topic:order-*", &["Pub"], &[], "Deny"),
                entry("Topic:order-paid*", &["Pub"], &[], "Allow"),
                entry("Topic:order-1", &["Pub", "Sub"], &[], "Allow"),
            ],
            vec![],
        );
        let ip = "127.0.0.1";
        assert_eq!(
            decide(&acl, ResourceType::Topic, "misc", &[Action::Pub], ip),
            Some(Decision::Allow)
        );
        assert_eq!(
            decide(&acl, ResourceType::Topic, "order-2", &[Action::Pub], ip),
            Some(Decision::Deny)
        );
        assert_eq!(
            decide(
                &acl,
                ResourceType::Topic,
                "order-paid-7",
                &[Action::Pub],
                ip
            ),
            Some(Decision::Allow)
        );
        assert_eq!(
            decide(&acl, ResourceType::Topic, "order-1", &[Action::Pub], ip),
            Some(Decision::Allow)
        );
        // No entry grants Sub on misc, and a group is another type.
        assert_eq!(
            decide(&acl, ResourceType::Topic, "misc", &[Action::Sub], ip),
            None
        );
        assert_eq!(
            decide(&acl, ResourceType::Group, "misc", &[Action::Pub], ip),
            None
        );

        let tie = super::tests::acl(
            vec![
                entry("Group:g", &["Sub"], &[], "Allow"),
                entry("Group:g", &["All"], &["10.0.0.0/8"], "Deny"),
            ],
            vec![],
        );
        // One body may hold two entries for a resource (Apache keeps both); where both
        // match, the deny decides.
        assert_eq!(tie.policies[0].entries.len(), 2);
        assert_eq!(
            decide(&tie, ResourceType::Group, "g", &[Action::Sub], "10.1.2.3"),
            Some(Decision::Deny)
        );
        assert_eq!(
            decide(
                &tie,
                ResourceType::Group,
                "g",
                &[Action::Sub],
                "192.168.0.1"
            ),
            Some(Decision::Allow)
        );
    }

    #[test]
    fn the_default_policy_applies_only_when_no_custom_entry_matches() {
        let acl = acl(
            vec![entry("Topic:secret", &["Sub"], &[], "Deny")],
            vec![entry("*", &["All"], &[], "Allow")],
        );
        assert_eq!(
            decide(&acl, ResourceType::Topic, "secret", &[Action::Sub], "::1"),
            Some(Decision::Deny)
        );
        assert_eq!(
            decide(&acl, ResourceType::Topic, "other", &[Action::Sub], "::1"),
            Some(Decision::Allow)
        );
        assert_eq!(
            decide(&acl, ResourceType::Cluster, "c", &[Action::Update], "::1"),
            Some(Decision::Allow)
        );
    }

    #[test]
    fn source_ips_take_addresses_and_cidr_ranges_including_mapped_v4() {
        let acl = acl(
            vec![entry(
                "Topic:t",
                &["Pub"],
                &["127.0.0.1", "192.168.0.0/16"],
                "Allow",
            )],
            vec![],
        );
        assert!(decide(
            &acl,
            ResourceType::Topic,
            "t",
            &[Action::Pub],
            "::ffff:127.0.0.1"
        )
        .is_some());
        assert!(decide(
            &acl,
            ResourceType::Topic,
            "t",
            &[Action::Pub],
            "192.168.9.9"
        )
        .is_some());
        assert!(decide(&acl, ResourceType::Topic, "t", &[Action::Pub], "10.0.0.1").is_none());
    }

    #[test]
    fn malformed_policies_are_refused_with_the_reason() {
        let bad = |e: PolicyEntryInfo| {
            acl_from_info(
                &AclInfo {
                    subject: Some("User:bob".into()),
                    policies: Some(vec![PolicyInfo {
                        policy_type: None,
                        entries: Some(vec![e]),
                    }]),
                },
                "",
            )
            .unwrap_err()
        };
        assert!(bad(entry("Queue:x", &["Pub"], &[], "Allow")).contains("resource type"));
        assert!(bad(entry("Topic:", &["Pub"], &[], "Allow")).contains("names nothing"));
        assert!(bad(entry("Topic:x", &["Publish"], &[], "Allow")).contains("action"));
        assert!(bad(entry("Topic:x", &["Any"], &[], "Allow")).contains("can not be Any"));
        assert!(bad(entry("Topic:x", &[], &[], "Allow")).contains("actions is empty"));
        assert!(bad(entry("Topic:x", &["Pub"], &["300.1.1.1"], "Allow")).contains("invalid"));
        assert!(bad(entry("Topic:x", &["Pub"], &[], "Maybe")).contains("decision"));
        assert!(acl_from_info(&AclInfo::default(), "User:x")
            .unwrap_err()
            .contains("policies is empty"));
        assert!(acl_from_info(&AclInfo::default(), "Role:x")
            .unwrap_err()
            .contains("User:<username>"));
    }

    #[test]
    fn resource_keys_round_trip() {
        for key in [
            "*",
            "Topic:*",
            "Group:g1",
            "Cluster:DefaultCluster",
            "Topic:pre*",
        ] {
            assert_eq!(Resource::parse(key).unwrap().key(), key);
        }
        assert_eq!(Resource::parse("topic:T").unwrap().key(), "Topic:T");
    }
}
