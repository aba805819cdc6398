//! Who the client is: its address (behind trusted proxies, the one the outermost proxy saw) and
//! the key it is counted under for rate limits and stream permits. [`ClientIp`] is the
//! extractor handlers take; middleware calls [`client_ip`] directly.

use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv6Addr};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use super::AppState;

/// The client's address as [`client_ip`] tells it with the server's `server.trusted_proxy_hops`;
/// `None` when it cannot be told (no socket address).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let hops = req
            .app_data::<web::Data<AppState>>()
            .expect("the app carries its state")
            .trusted_proxy_hops;
        ready(Ok(ClientIp(client_ip(req, hops))))
    }
}

/// The client's address: the socket's, or with `hops` trusted proxies in front, the address
/// the outermost trusted proxy saw (counted from the right of X-Forwarded-For, so a client
/// cannot forge it by sending its own header).
pub fn client_ip(req: &HttpRequest, hops: usize) -> Option<IpAddr> {
    let socket = req.peer_addr().map(|a| a.ip());
    if hops == 0 {
        return socket;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(hops)
        .and_then(|i| forwarded.get(i))
        .and_then(|s| s.parse().ok())
        .or(socket)
}

/// The key one client is rate-limited under: its IPv4 address, or its IPv6 /64 (a subscriber
/// gets a whole /64 and could otherwise take a fresh bucket per address).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_key(mapped),
            v4,
            "a v4-mapped address is its IPv4 client"
        );
    }
}
