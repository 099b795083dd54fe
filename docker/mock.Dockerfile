# The mock Claude API (crate tollgate-mock) as a container for docker-compose.yml.
# Build context: the repository root (`docker compose build mock`).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p tollgate-mock

FROM debian:bookworm-slim
COPY --from=build /src/target/release/tollgate-mock /usr/local/bin/tollgate-mock
EXPOSE 8081
ENTRYPOINT ["tollgate-mock"]
CMD ["--listen", "0.0.0.0:8081", "--demo"]
