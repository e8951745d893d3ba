# syntax=docker/dockerfile:1
# One image for every shelfwatch role (migrate, serve, scrape, forecast,
# demo-store); docker-compose.yml picks the role by command.

# --- build ---------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them: a stub
# crate with the real manifest and lock file.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src tests/it benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --bin shelfwatch \
    && rm -rf src tests
COPY migrations migrations
COPY src src
COPY tests tests
# Touch so cargo sees the real sources as newer than the stub's build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin shelfwatch

# --- run -----------------------------------------------------------------
FROM debian:bookworm-slim AS run
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin shelfwatch \
    && mkdir -p /app/.shelfwatch \
    && chown -R shelfwatch /app
WORKDIR /app
COPY --from=build /src/target/release/shelfwatch /usr/local/bin/shelfwatch
COPY retailers retailers
COPY shelfwatch.example.toml shelfwatch.example.toml
USER shelfwatch
# API, its /metrics, the scraper's and the forecaster's /metrics, the demo store.
EXPOSE 8080 9464 9466 9467 8700
# tini forwards SIGTERM, so every role shuts down cleanly on `docker stop`.
ENTRYPOINT ["/usr/bin/tini", "--", "shelfwatch"]
CMD ["--help"]
