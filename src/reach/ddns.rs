//! Dynamic DNS: keeps one name's A record at this server's external address with an RFC 2136
//! UPDATE signed by TSIG (RFC 8945), as BIND, Knot and PowerDNS accept.
//!
//! One message replaces the record set (delete the name's A records, add the new one), so the
//! name never resolves to nothing in between.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_proto::op::{update_message, DnsRequest, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

/// The `ddns` settings, checked: what to update, where, and with which key.
#[derive(Clone)]
pub struct DdnsConfig {
    /// The zone's primary server, IP:PORT.
    pub server: SocketAddr,
    pub zone: Name,
    /// The name kept pointing at us, inside `zone`.
    pub name: Name,
    pub ttl: u32,
    pub key_name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for DdnsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("DdnsConfig")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DdnsError {
    #[error("cannot sign with the TSIG key {key}: {reason}")]
    Key { key: String, reason: String },
    #[error("updating {name} at {server}: {reason}")]
    Exchange {
        name: String,
        server: SocketAddr,
        reason: String,
    },
    #[error("{server} refused the update of {name}: {code}")]
    Refused {
        name: String,
        server: SocketAddr,
        code: ResponseCode,
    },
}

/// Parses a DNS name setting, fully qualified; the error is the reason.
pub fn parse_name(value: &str) -> Result<Name, String> {
    let mut name = Name::from_str(value).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// Parses a TSIG algorithm name as `tsig-keygen -a` spells it; the error is the reason.
pub fn parse_algorithm(value: &str) -> Result<TsigAlgorithm, String> {
    match value.to_ascii_lowercase().as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        _ => Err("expected hmac-sha256, hmac-sha384 or hmac-sha512".into()),
    }
}

/// How long one update may take, retries included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds of clock difference the server may allow for (RFC 8945's recommended fudge).
const FUDGE: u16 = 300;

impl DdnsConfig {
    /// Points the name at `ip`: one signed UPDATE that deletes its A records and adds this one.
    pub async fn update(&self, ip: Ipv4Addr) -> Result<(), DdnsError> {
        let signer = TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.key_name.clone(),
            FUDGE,
        )
        .map_err(|e| DdnsError::Key {
            key: self.key_name.to_string(),
            reason: e.to_string(),
        })?;
        let exchange_error = |reason: String| DdnsError::Exchange {
            name: self.name.to_string(),
            server: self.server,
            reason,
        };
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(TIMEOUT))
            .with_signer(Some(signer))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let background = tokio::spawn(background);

        let record = Record::from_rdata(self.name.clone(), self.ttl, RData::A(A(ip)));
        let mut message = update_message::delete_rrset(
            Record::update0(self.name.clone(), 0, RecordType::A),
            self.zone.clone(),
            false,
        );
        message.add_update(record);
        let reply = client
            .send(DnsRequest::from(message))
            .next()
            .await
            .ok_or_else(|| exchange_error("no answer".into()))
            .and_then(|r| r.map_err(|e| exchange_error(e.to_string())));
        background.abort();
        let code = reply?.metadata.response_code;
        if code != ResponseCode::NoError {
            return Err(DdnsError::Refused {
                name: self.name.to_string(),
                server: self.server,
                code,
            });
        }
        Ok(())
    }
}
