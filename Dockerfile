# Multi-stage build: compile in the Rust image, run from a slim Debian image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY config config
COPY src src
RUN cargo build --release --locked

FROM debian:bookworm-slim
# curl is for the HEALTHCHECK; ca-certificates for announcing to https trackers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv/gotorrent gotorrent \
 && mkdir -p /srv/gotorrent/data /srv/gotorrent/state \
 && chown -R gotorrent /srv/gotorrent
COPY --from=build /src/target/release/gotorrent-http /usr/local/bin/gotorrent-http
USER gotorrent
WORKDIR /srv/gotorrent
# Listen on all interfaces in a container; PORT (set by Railway and other PaaS) overrides this.
ENV GOTORRENT__SERVER__BIND=0.0.0.0:8080 \
    GOTORRENT__LOG__FORMAT=json
VOLUME ["/srv/gotorrent/data", "/srv/gotorrent/state"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD curl -fsS "http://127.0.0.1:${PORT:-8080}/health" || exit 1
CMD ["gotorrent-http", "serve"]
