# graph-agent's image: built from this repository, run as an unprivileged
# user. Used by `graphdrill run --backend docker` where a registry or a
# Docker build is available:
#   docker build -t graphdrill/graph-agent:latest .
# (Without a registry, scripts/build-local-images assembles the same
# runtime image from a binary built on the host.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY crates crates
RUN cargo build --release --locked -p graph-agent --bin graph-agent

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 graph-agent \
 && useradd --system --uid 10001 --gid graph-agent \
      --home-dir /var/lib/graph-agent --create-home graph-agent
COPY --from=build /src/target/release/graph-agent /usr/local/bin/graph-agent
USER 10001:10001
WORKDIR /var/lib/graph-agent
ENTRYPOINT ["/usr/local/bin/graph-agent"]
CMD ["--config", "/etc/graph-agent/agent.toml", "serve"]
