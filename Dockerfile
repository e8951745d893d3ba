# syntax=docker/dockerfile:1
# Two images from one build:
# - the service image (the default, last stage): every production role
#   (migrate, serve, scrape, forecast, import, backtest), built without the
#   `demo` feature, so the demo store and the developer tools are not in it;
# - `--target demo`: the same binary with the demo store and `up`, for the
#   stand-in shops in docker-compose.yml.

# --- build ---------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY tests tests
COPY migrations migrations
# The registry and target directories are cache mounts, so a source change
# rebuilds only the crates it touches; the binaries are copied out of the
# cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin shelfwatch \
    && cp target/release/shelfwatch /shelfwatch-service \
    && cargo build --release --locked --bin shelfwatch \
    && cp target/release/shelfwatch /shelfwatch-demo

# --- shared runtime base -------------------------------------------------
FROM debian:bookworm-slim AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin shelfwatch \
    && mkdir -p /app/.shelfwatch/spool \
    && chown -R shelfwatch /app
WORKDIR /app
# /app/.shelfwatch/spool is the scraper's spool (scrape.spool_dir in
# docker-compose.yml): made here, owned by uid 10001, so the named volume
# mounted on it starts out writable by the shelfwatch user.
# The real shops in retailers/, the demo store's in retailers/demo/.
COPY retailers retailers
COPY shelfwatch.example.toml shelfwatch.example.toml
USER shelfwatch
# tini forwards SIGTERM, so every role shuts down cleanly on `docker stop`.
ENTRYPOINT ["/usr/bin/tini", "--", "shelfwatch"]
CMD ["--help"]

# --- the demo store and `up` (docker build --target demo) ----------------
FROM base AS demo
COPY --from=build /shelfwatch-demo /usr/local/bin/shelfwatch
EXPOSE 8700

# --- the service image (default) -----------------------------------------
FROM base AS service
COPY --from=build /shelfwatch-service /usr/local/bin/shelfwatch
# API, its /metrics, the scraper's and the forecaster's /metrics.
EXPOSE 8080 9464 9466 9467
