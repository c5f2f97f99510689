# Multi-stage build of pooler; runs as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pooler --bin pooler

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 pooler
COPY --from=build /src/target/release/pooler /usr/local/bin/pooler
USER pooler
EXPOSE 6432
ENTRYPOINT ["/usr/local/bin/pooler"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
