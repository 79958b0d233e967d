# tokend: build with the Rust toolchain, run on a slim Debian with nothing else inside.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tokend tokend \
 && mkdir -p /var/lib/tokend/data && chown -R tokend /var/lib/tokend
COPY --from=build /src/target/release/tokend /usr/local/bin/tokend
USER tokend
WORKDIR /var/lib/tokend
ENV TOKEND_LISTEN=0.0.0.0:8080 \
    TOKEND_DATA_DIR=/var/lib/tokend/data \
    SSL_CERT_DIR=/etc/ssl/certs
EXPOSE 8080
VOLUME ["/var/lib/tokend/data"]
ENTRYPOINT ["tokend"]
CMD ["serve"]
