# tokend: built with the Rust toolchain, run on a slim Debian as an unprivileged user.
#
#   docker build -t tokend .
#   docker run -p 127.0.0.1:8080:8080 -v tokend-data:/var/lib/tokend/data tokend
#
# The base images are build arguments only so that CI, which reaches no container registry,
# can substitute images it builds from Debian's packages (docs/operators-guide.md,
# "Container image"); the defaults are the Docker Hub images.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Exactly what `cargo build` reads: the manifest, the sources, the migrations embedded by
# diesel_migrations, and the dashboard and API explorer files embedded with include_bytes!.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY static static
COPY vendor vendor
RUN cargo build --release --locked --bin tokend \
 && install -m 0755 target/release/tokend /usr/local/bin/tokend

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tokend" \
      org.opencontainers.image.description="Service-account token issuer and revocation service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# ca-certificates: outgoing TLS (federation JWKS, expiry webhooks, PostgreSQL with sslmode).
# uid 10001 matches runAsUser in deploy/kubernetes/deployment.yaml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/tokend \
      --shell /usr/sbin/nologin tokend \
 && mkdir -p -m 0700 /var/lib/tokend/data \
 && chown -R 10001:10001 /var/lib/tokend
COPY --from=build /usr/local/bin/tokend /usr/local/bin/tokend
USER 10001:10001
WORKDIR /var/lib/tokend
ENV TOKEND_LISTEN=0.0.0.0:8080 \
    TOKEND_DATA_DIR=/var/lib/tokend/data \
    SSL_CERT_DIR=/etc/ssl/certs
EXPOSE 8080
# The SQLite database and the key files (signing keys, key-encryption key) live here.
VOLUME ["/var/lib/tokend/data"]
# The binary asks its own /ready: no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["tokend", "health"]
ENTRYPOINT ["tokend"]
CMD ["serve"]
