//! Our side of HTTP calls to servers we do not control (trackers, seeders, .torrent URLs):
//! every body read is bounded, and a refusal carries the server's own `message` so the log
//! says why (a gotorrent-http server answers every error with `{error, message}`).

use reqwest::Response;

/// Most bytes of an error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url} answered {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        /// The server's `message`, or the start of a plain-text body.
        message: Option<String>,
    },
    #[error("{url}: the response is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// The response if its status is a success; otherwise an error with the server's message.
pub async fn checked(response: Response) -> Result<Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let url = response.url().to_string();
    let body = read_limited(response, MAX_ERROR_BODY).await.ok();
    let message = body.as_deref().and_then(message_of);
    Err(ClientError::Refused {
        url,
        status,
        message,
    })
}

/// The body, or an error once it grows past `limit` bytes (whatever Content-Length claims).
pub async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    let url = response.url().to_string();
    let too_large = || ClientError::TooLarge {
        url: url.clone(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `message` of a JSON error body, else the body itself when it is short text.
fn message_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return Some(parsed.message);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    (!text.is_empty()).then(|| crate::types::truncate_for_message(text))
}

#[cfg(test)]
mod tests {
    use super::message_of;

    #[test]
    fn the_message_of_a_json_error_or_plain_text() {
        let json =
            br#"{"error":"seeder_refused","message":"seeder URL http://10.0.0.5 points at"}"#;
        assert_eq!(
            message_of(json).as_deref(),
            Some("seeder URL http://10.0.0.5 points at")
        );
        assert_eq!(message_of(b"  busy\n").as_deref(), Some("busy"));
        assert_eq!(message_of(b""), None);
        assert_eq!(message_of(&[0xff, 0xfe]), None);
    }
}
