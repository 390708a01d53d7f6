//! Where a webhook may be sent, checked against the operator's [`TargetPolicy`]: when an
//! endpoint is registered or its URL changed (the address in the URL, or every address
//! its host resolves to), and again by the engine for each delivery on the addresses it
//! connects to (a name may resolve elsewhere later). The rule itself is the domain's
//! ([`tenure_domain::outbound`]); this module adds the lookups.

use std::net::SocketAddr;
use std::time::Duration;

use tenure_domain::outbound::{NonPublic, TargetPolicy};
use url::{Host, Url};

/// How long registration waits for DNS. A name that does not resolve in time (or at
/// all) is accepted: the delivery checks it again on the addresses it connects to.
const REGISTRATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a target is refused. The wording completes "url …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("must not point to {0}; webhooks are sent only to public addresses")]
    Address(NonPublic),
    #[error("must not name this machine (localhost); webhooks are sent only to public addresses")]
    LocalName,
    #[error("names a host that resolves to {0}; webhooks are sent only to public addresses")]
    ResolvesTo(NonPublic),
}

/// A lookup that found no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(#[from] TargetRefused),
    #[error("the host could not be resolved: {0}")]
    Lookup(#[from] std::io::Error),
}

/// The refusal of a URL whose host is an IP address, in any spelling the URL parser
/// accepts (it has already normalised `2130706433`, `0x7f000001` and `127.1`). `None`
/// for a host name, which needs a lookup, or for an allowed address.
pub fn literal_refusal(url: &Url, policy: TargetPolicy) -> Option<TargetRefused> {
    let ip = match url.host()? {
        Host::Ipv4(ip) => ip.into(),
        Host::Ipv6(ip) => ip.into(),
        Host::Domain(_) => return None,
    };
    policy.refusal(ip).map(TargetRefused::Address)
}

/// Resolves `host` and returns its addresses, or the refusal if any one of them is not
/// allowed (a name with one private address among public ones is refused whole, so
/// which one gets connected to cannot matter). What counts is where the name leads now,
/// so `localhost` is looked up like any other name here.
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if let Some(refusal) = addrs.iter().find_map(|a| policy.refusal(a.ip())) {
        return Err(TargetRefused::ResolvesTo(refusal).into());
    }
    Ok(addrs)
}

/// The check made when an endpoint's URL is registered or changed.
pub async fn check_url(url: &Url, policy: TargetPolicy) -> Result<(), TargetRefused> {
    if policy == TargetPolicy::AllowPrivate {
        return Ok(());
    }
    if let Some(refusal) = literal_refusal(url, policy) {
        return Err(refusal);
    }
    let (Some(Host::Domain(name)), Some(port)) = (url.host(), url.port_or_known_default()) else {
        return Ok(());
    };
    // Refused without a lookup, which could fail or be slow here and let it through.
    if policy.refuses_name(name) {
        return Err(TargetRefused::LocalName);
    }
    match tokio::time::timeout(
        REGISTRATION_LOOKUP_TIMEOUT,
        resolve_allowed(name, port, policy),
    )
    .await
    {
        Ok(Err(ResolveError::Refused(refusal))) => Err(refusal),
        // Resolved to allowed addresses, or not (yet) resolvable.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw).expect("a valid URL")
    }

    #[tokio::test]
    async fn every_spelling_of_a_local_address_is_refused_at_registration() {
        for raw in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://localhost:5432/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            let refused = check_url(&url(raw), TargetPolicy::PublicOnly).await;
            assert!(refused.is_err(), "{raw} was let through");
            assert_eq!(
                check_url(&url(raw), TargetPolicy::AllowPrivate).await,
                Ok(())
            );
        }
    }

    #[tokio::test]
    async fn a_name_is_judged_by_the_addresses_it_resolves_to() {
        // The lookup of an address literal answers the address itself.
        let refused = resolve_allowed("127.0.0.1", 80, TargetPolicy::PublicOnly).await;
        assert!(
            matches!(
                refused,
                Err(ResolveError::Refused(TargetRefused::ResolvesTo(
                    NonPublic::Loopback
                )))
            ),
            "{refused:?}"
        );
        let allowed = resolve_allowed("127.0.0.1", 80, TargetPolicy::AllowPrivate).await;
        assert_eq!(
            allowed.expect("allowed"),
            vec![SocketAddr::from(([127, 0, 0, 1], 80))]
        );
        let public = resolve_allowed("93.184.215.14", 443, TargetPolicy::PublicOnly).await;
        assert!(public.is_ok(), "{public:?}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_left_to_the_delivery() {
        let unknown = url("https://receiver.invalid/hooks");
        assert_eq!(check_url(&unknown, TargetPolicy::PublicOnly).await, Ok(()));
    }
}
