# Multi-stage build: compile in the Rust image, run from a slim Debian image as a non-root user.
# No VOLUME instruction: Railway refuses images that declare one; attach a volume at
# /srv/gotorrent instead (railway.toml says how). deploy/entrypoint.sh gives a volume mounted
# owned by root to the service user, then drops to it.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole tree, less what .dockerignore names: a directory the build needs (templates,
# benches named in Cargo.toml) cannot be forgotten here again.
COPY . .
RUN cargo build --release --locked --bin gotorrent-http

FROM debian:bookworm-slim
# curl is for the HEALTHCHECK; ca-certificates for announcing to https trackers; setpriv (in
# util-linux, part of the base image) drops root in the entrypoint.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /srv/gotorrent gotorrent \
 && mkdir -p /srv/gotorrent/data /srv/gotorrent/state \
 && chown -R gotorrent:gotorrent /srv/gotorrent
COPY --from=build /src/target/release/gotorrent-http /usr/local/bin/gotorrent-http
COPY deploy/entrypoint.sh /usr/local/bin/gotorrent-entrypoint
WORKDIR /srv/gotorrent
# Listen on all interfaces in a container; PORT (set by Railway and other PaaS) overrides this.
ENV GOTORRENT__SERVER__BIND=0.0.0.0:8080 \
    GOTORRENT__LOG__FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD curl -fsS "http://127.0.0.1:${PORT:-8080}/health" || exit 1
ENTRYPOINT ["/usr/local/bin/gotorrent-entrypoint"]
CMD ["gotorrent-http", "serve"]
