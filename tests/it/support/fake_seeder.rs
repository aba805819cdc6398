//! A scriptable seeder for fault tests: serves `/chunks/{hash}/{index}` and `/files/{name}` from
//! memory, and can corrupt, stall, refuse or die on cue. Counts the requests it answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    Good,
    /// Flips a byte in every piece it sends.
    Corrupt,
    /// Flips a byte in the first piece it is asked for, whichever that is.
    CorruptFirst,
    /// Waits this long before each answer.
    Slow(Duration),
    /// Answers this many requests, then drops its listener and connections.
    DieAfter(usize),
    /// Answers 503 with Retry-After: 1 to the first this-many requests.
    Unavailable(usize),
    /// Web seed that ignores Range and sends the whole file with 200.
    IgnoresRange,
    /// Sends each piece one byte at a time, this long apart.
    Drip(Duration),
    /// Never sends a piece's body: the response head, then silence.
    Stall,
}

struct State {
    /// The body of `GET /peers`, as a hostile tracker would send it.
    peers: Mutex<String>,
    data: Vec<u8>,
    piece_length: usize,
    behaviour: Behaviour,
    requests: AtomicUsize,
    /// Whether `CorruptFirst` has corrupted its piece.
    corrupted: std::sync::atomic::AtomicBool,
    handle: Mutex<Option<actix_web::dev::ServerHandle>>,
}

pub struct FakeSeeder {
    pub url: String,
    state: Arc<State>,
}

impl FakeSeeder {
    pub async fn start(data: Vec<u8>, piece_length: usize, behaviour: Behaviour) -> FakeSeeder {
        let state = Arc::new(State {
            peers: Mutex::new(r#"{"peers":[]}"#.to_owned()),
            data,
            piece_length,
            behaviour,
            requests: AtomicUsize::new(0),
            corrupted: std::sync::atomic::AtomicBool::new(false),
            handle: Mutex::new(None),
        });
        let shared = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                // As our seeders do, so a page on another origin can read its pieces.
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add(("access-control-allow-origin", "*")),
                )
                .route("/chunks/{hash}/{index}", web::get().to(chunk))
                .route("/files/{name:.+}", web::get().to(file))
                .route("/peers", web::get().to(peers))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        *state.handle.lock().unwrap() = Some(server.handle());
        actix_web::rt::spawn(server);
        FakeSeeder {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Makes `GET /peers` answer `body` (this fake doubles as a tracker).
    pub fn set_peers(&self, body: String) {
        *self.state.peers.lock().unwrap() = body;
    }

    /// Requests answered with piece data so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// Applies the behaviour; `None` means answer normally.
async fn misbehave(state: &State) -> Option<HttpResponse> {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    match state.behaviour {
        Behaviour::Slow(delay) => actix_web::rt::time::sleep(delay).await,
        Behaviour::DieAfter(limit) if n >= limit => {
            if let Some(handle) = state.handle.lock().unwrap().take() {
                actix_web::rt::spawn(async move { handle.stop(false).await });
            }
            return Some(HttpResponse::InternalServerError().finish());
        }
        Behaviour::Unavailable(limit) if n < limit => {
            return Some(
                HttpResponse::ServiceUnavailable()
                    .insert_header(("retry-after", "1"))
                    .finish(),
            );
        }
        _ => {}
    }
    None
}

async fn peers(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.peers.lock().unwrap().clone())
}

/// A body that yields one byte per `every`, or nothing ever.
fn trickle(bytes: Vec<u8>, every: Option<Duration>) -> HttpResponse {
    let len = bytes.len() as u64;
    let stream = futures_util::stream::unfold((bytes, 0), move |(bytes, at)| async move {
        match every {
            None => std::future::pending::<()>().await,
            Some(every) => actix_web::rt::time::sleep(every).await,
        }
        let byte = web::Bytes::copy_from_slice(bytes.get(at..=at)?);
        Some((Ok::<_, std::io::Error>(byte), (bytes, at + 1)))
    });
    HttpResponse::Ok().body(actix_web::body::SizedStream::new(len, stream))
}

async fn chunk(path: web::Path<(String, usize)>, state: web::Data<State>) -> HttpResponse {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    let index = path.1;
    let start = index * state.piece_length;
    if start >= state.data.len() {
        return HttpResponse::NotFound().finish();
    }
    let end = (start + state.piece_length).min(state.data.len());
    let mut piece = state.data[start..end].to_vec();
    match state.behaviour {
        Behaviour::Corrupt => piece[0] ^= 0xff,
        Behaviour::CorruptFirst if !state.corrupted.swap(true, Ordering::SeqCst) => {
            piece[0] ^= 0xff
        }
        Behaviour::Drip(every) => return trickle(piece, Some(every)),
        Behaviour::Stall => return trickle(piece, None),
        _ => {}
    }
    HttpResponse::Ok().body(piece)
}

async fn file(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    if matches!(state.behaviour, Behaviour::IgnoresRange) {
        return HttpResponse::Ok().body(state.data.clone());
    }
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (start, end) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .unwrap_or((0, state.data.len() - 1));
    HttpResponse::PartialContent()
        .insert_header((
            "content-range",
            format!("bytes {start}-{end}/{}", state.data.len()),
        ))
        .body(state.data[start..=end].to_vec())
}
