# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user on slim Debian.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin sluice \
 && mkdir -p /data \
 && chown sluice:sluice /data
WORKDIR /app
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
ENV SLUICE_BIND=0.0.0.0:8080 \
    SLUICE_DATA_DIR=/data \
    SLUICE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER sluice
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
