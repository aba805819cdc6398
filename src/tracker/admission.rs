//! Which seeder URLs the tracker lists: the rule for loopback and private addresses.
//!
//! A tracker on the internet must not let anyone point downloaders at hosts inside some
//! network (its own, or a victim's), yet a laptop or LAN must work with default settings. So
//! under `same-network` a seeder URL is judged against the address the announce came from: a
//! private address only from a client on a private or loopback network (it is on that
//! network), a loopback address only from this machine. Host names are resolved first, and the
//! most inward address they resolve to decides (a public name for 10.0.0.5 is private).

use std::net::IpAddr;

use crate::types::{AddressClass, SeederUrl};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("seeder URL {url} points at the {class} address {address}, and this announce comes from {client}; this tracker lists such seeders only {rule} (tracker.private_seeders = {setting})")]
    NotOnThatNetwork {
        url: String,
        class: &'static str,
        address: IpAddr,
        client: String,
        rule: &'static str,
        setting: &'static str,
    },
    #[error("seeder URL {url}: its host {host} does not resolve to an address ({why})")]
    Unresolvable {
        url: String,
        host: String,
        why: String,
    },
}

/// The addresses a seeder URL's host stands for: the literal, or what the name resolves to.
pub async fn resolve(url: &SeederUrl) -> Result<Vec<IpAddr>, AdmissionError> {
    let unresolvable = |host: &str, why: String| AdmissionError::Unresolvable {
        url: url.to_string(),
        host: host.to_owned(),
        why,
    };
    match url.host() {
        url::Host::Ipv4(ip) => Ok(vec![IpAddr::V4(ip)]),
        url::Host::Ipv6(ip) => Ok(vec![IpAddr::V6(ip)]),
        url::Host::Domain(name) => {
            let found: Vec<IpAddr> = tokio::net::lookup_host((name.as_str(), url.port()))
                .await
                .map_err(|e| unresolvable(&name, e.to_string()))?
                .map(|a| a.ip())
                .collect();
            if found.is_empty() {
                return Err(unresolvable(&name, "no addresses".into()));
            }
            Ok(found)
        }
    }
}

/// Which seeder URLs on loopback or private addresses the tracker lists
/// (`tracker.private_seeders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivateSeeders {
    /// A private address only from a client on a private or loopback network, a loopback one
    /// only from the same machine.
    SameNetwork,
    /// Every address (a tracker for one LAN or laptop).
    Always,
    /// Public addresses only.
    Never,
}

/// Whether a seeder URL whose host resolved to `addresses` may be listed for a client that
/// connects from `client` (`None`: the address could not be told, judged as public).
pub fn admit(
    policy: PrivateSeeders,
    url: &SeederUrl,
    addresses: &[IpAddr],
    client: Option<IpAddr>,
) -> Result<(), AdmissionError> {
    let Some((class, address)) = addresses
        .iter()
        .map(|ip| (AddressClass::of(*ip), *ip))
        .max_by_key(|(class, _)| *class)
    else {
        return Ok(());
    };
    let client_class = client.map_or(AddressClass::Public, AddressClass::of);
    let (allowed, rule, setting) = match policy {
        PrivateSeeders::Always => (true, "", "always"),
        PrivateSeeders::Never => (class == AddressClass::Public, "never", "never"),
        // A client on a network may name hosts of that network, and only this machine may name
        // this machine.
        PrivateSeeders::SameNetwork => (
            class <= client_class,
            match class {
                AddressClass::Loopback => "from this machine",
                _ => "from clients on a private or loopback network",
            },
            "same-network",
        ),
    };
    if allowed {
        return Ok(());
    }
    Err(AdmissionError::NotOnThatNetwork {
        url: url.to_string(),
        class: class.describe(),
        address,
        client: client.map_or_else(
            || "an unknown address".to_owned(),
            |ip| format!("the {} address {ip}", client_class.describe()),
        ),
        rule,
        setting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: PrivateSeeders, url: &str, client: &str) -> Result<(), AdmissionError> {
        let url = SeederUrl::parse(url).unwrap();
        let addresses = vec![match url.host() {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            other => panic!("{other:?}"),
        }];
        admit(policy, &url, &addresses, Some(client.parse().unwrap()))
    }

    #[test]
    fn same_network_admits_private_seeders_from_their_own_network_only() {
        use PrivateSeeders::SameNetwork as S;
        // A laptop: a second seeder on the same machine.
        assert!(check(S, "http://127.0.0.1:8081", "127.0.0.1").is_ok());
        // A LAN: a seeder announcing its LAN address from the LAN (or from the tracker's host).
        assert!(check(S, "http://192.168.1.20:8080", "192.168.1.20").is_ok());
        assert!(check(S, "http://192.168.1.20:8080", "127.0.0.1").is_ok());
        // Public seeders are fine from anywhere.
        assert!(check(S, "http://93.184.216.34", "10.0.0.1").is_ok());
        assert!(check(S, "http://93.184.216.34", "8.8.8.8").is_ok());
        // From the internet, internal hosts are refused, and the error says why.
        let err = check(S, "http://10.0.0.5:8080", "8.8.8.8").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("private address 10.0.0.5")
                && text.contains("public address 8.8.8.8")
                && text.contains("tracker.private_seeders = same-network"),
            "{text}"
        );
        assert!(check(S, "http://127.0.0.1:8080", "8.8.8.8").is_err());
        // Only this machine may name this machine.
        let err = check(S, "http://127.0.0.1:8080", "192.168.1.20").unwrap_err();
        assert!(err.to_string().contains("from this machine"), "{err}");
    }

    #[test]
    fn always_and_never_override() {
        assert!(check(PrivateSeeders::Always, "http://10.0.0.5", "8.8.8.8").is_ok());
        assert!(check(PrivateSeeders::Never, "http://10.0.0.5", "10.0.0.5").is_err());
        assert!(check(PrivateSeeders::Never, "http://127.0.0.1", "127.0.0.1").is_err());
        assert!(check(PrivateSeeders::Never, "http://93.184.216.34", "10.0.0.5").is_ok());
    }

    #[test]
    fn the_most_inward_address_of_a_name_decides() {
        let url = SeederUrl::parse("http://seed.example.com").unwrap();
        let addresses: Vec<IpAddr> = vec![
            "93.184.216.34".parse().unwrap(),
            "10.0.0.5".parse().unwrap(),
        ];
        let err = admit(
            PrivateSeeders::SameNetwork,
            &url,
            &addresses,
            Some("8.8.8.8".parse().unwrap()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("10.0.0.5"), "{err}");
    }

    #[actix_web::test]
    async fn localhost_resolves_to_loopback() {
        let url = SeederUrl::parse("http://localhost:8080").unwrap();
        let addresses = resolve(&url).await.unwrap();
        assert!(addresses
            .iter()
            .all(|ip| AddressClass::of(*ip) == AddressClass::Loopback));
    }
}
